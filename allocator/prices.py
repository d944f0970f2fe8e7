"""What each rule costs: prices from the optimal flow, or from LP duals, as :class:`RulePrice`.

Network prices (``price_source = "flow potentials (residual-graph shortest
paths)"``).  In an optimal flow the residual graph has no negative cycle; the
objective gained by relaxing one rule by one unit is minus the cheapest cycle
through the arc that relaxing adds:

* capacity of partner ``j`` (+1 lead): new arc ``j → tier(j)``; gain
  ``max(0, −dist(tier(j) → j))``;
* floor of ``j`` (−1 lead): new arc ``tier(j) → j``; gain ``max(0, −dist(j → tier(j)))``;
* tier maximum (+1): new arc ``t → sink``; gain ``max(0, −dist(sink → t))``;
* tier minimum (−1): new arc ``sink → t``; gain ``max(0, −dist(t → sink))``;
* ``assign_all``: a new arc ``lead → sink`` for the lead whose release gains most.

Lead nodes are many and partners few, so distances are taken on the
*partner-level* graph: a path through a lead is ``partner → lead → partner``
(take a lead from one partner, give it to another) or passes the sink (leave a
lead unassigned, or place an unassigned one), and each such pair of arcs is
collapsed into one edge with the cheapest lead.  Bellman–Ford then runs,
vectorized, from every tier and the sink (and backwards to every tier) on
integer costs, so the answer is exact for the scaled costs the flow optimized.
These are exact marginal values (one unit, right derivative), not an arbitrary
dual solution: an LP dual at a degenerate optimum can differ.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from allocator.build import quota_groups, tier_limits
from allocator.flow import FlowSolution
from allocator.linear import LinearModel
from allocator.problem import AllocationProblem, RulePrice
from allocator.residual import INF as _INF
from allocator.residual import bellman_ford, partner_graph

__all__ = ["bellman_ford"]  # re-exported: the prices' shortest paths

FLOW_SOURCE = "flow potentials (residual-graph shortest paths)"


@dataclass(frozen=True, eq=False)
class Prices:
    """Marginal value of relaxing each rule by one unit, in objective units.

    ``cap`` is per partner per lead (per effort unit with effort-weighted
    capacity); ``floor`` per partner; ``tier_max``/``tier_min`` per tier of
    :func:`~allocator.build.tier_limits`; ``quota_max``/``quota_min`` per group of
    :func:`~allocator.build.quota_groups`.
    """

    cap: np.ndarray
    floor: np.ndarray
    tier_max: np.ndarray
    tier_min: np.ndarray
    quota_max: np.ndarray
    quota_min: np.ndarray
    assign_all: float
    source: str
    quota_source: str = ""
    count_cap: np.ndarray | None = None

    def partner_price(self) -> np.ndarray:
        """Per partner: capacity price when it binds, else minus the floor price."""
        return np.where(self.cap > 0, self.cap, -self.floor) + 0.0


def zero_prices(problem: AllocationProblem, source: str) -> Prices:
    """All-zero prices (no rule binds, or nothing to price)."""
    n_tiers = tier_limits(problem)[0].shape[0]
    n_groups = len(quota_groups(problem)[0])
    z = np.zeros(problem.n_partners)
    return Prices(cap=z, floor=z.copy(), tier_max=np.zeros(n_tiers), tier_min=np.zeros(n_tiers),
                  quota_max=np.zeros(n_groups), quota_min=np.zeros(n_groups), assign_all=0.0,
                  source=source)


def network_prices(problem: AllocationProblem, sol: FlowSolution,
                   source: str = FLOW_SOURCE) -> Prices:
    """Rule prices read from an optimal flow's residual graph (see module docstring)."""
    spec = sol.spec
    m, t = problem.n_partners, spec.tier_names.shape[0]
    sink = m + t
    tiers = np.arange(m, m + t)
    idx = np.arange(m)
    tier_of = spec.partner_tier
    chosen, pc, pp = sol.pair_flow, sol.pair_cost, problem.pair_partner
    count = sol.partner_count
    tier_count = np.bincount(tier_of, weights=count, minlength=t).astype(np.int64)
    n_nodes, tail, head, cost = partner_graph(problem, sol)
    fwd = bellman_ford(n_nodes, tail, head, cost, np.r_[tiers, sink])  # dist(source → v)
    bwd = bellman_ford(n_nodes, head, tail, cost, tiers)  # dist(v → tier)

    def gain(d: np.ndarray) -> np.ndarray:
        return np.where(d >= _INF, 0.0, np.maximum(0.0, -d.astype(np.float64)))

    f = sol.scale.factor
    full = count >= spec.cap
    cap = np.where(full, gain(fwd[idx, tier_of]), 0.0) / f
    at_floor = (count <= spec.floor) & (spec.floor > 0)
    floor = np.where(at_floor, gain(bwd[idx, tier_of]), 0.0) / f
    if spec.soft and sol.shortfall is not None:
        floor = np.where(sol.shortfall > 0, sol.scale.penalty_value, floor)
    tier_max = np.where(tier_count >= spec.tier_hi, gain(fwd[tiers, t]), 0.0) / f
    tier_min = np.where((tier_count <= spec.tier_lo) & (spec.tier_lo > 0),
                        gain(fwd[sink, np.arange(t)]), 0.0) / f
    assign_all = 0.0
    if spec.assign_all and chosen.any():
        # Release lead i: sink → … → partner a(i) → lead i → sink.
        through = fwd[pp[chosen], t]
        reach = through < _INF
        if reach.any():
            assign_all = float(max(0.0, -float(np.min(through[reach] - pc[chosen][reach])))) / f
    n_groups = len(quota_groups(problem)[0])
    return Prices(cap=cap, floor=floor, tier_max=tier_max, tier_min=tier_min,
                  quota_max=np.zeros(n_groups), quota_min=np.zeros(n_groups),
                  assign_all=assign_all, source=source)


def chosen_pairs(problem: AllocationProblem, lead_partner: np.ndarray) -> np.ndarray:
    """Per lead, the index of the pair (lead, its partner), ``-1`` when unassigned or not a pair."""
    lp = np.asarray(lead_partner, dtype=np.int64)
    out = np.full(problem.n_leads, -1, dtype=np.int64)
    if not problem.n_pairs or not problem.n_leads:
        return out
    match = np.flatnonzero(lp[problem.pair_lead] == problem.pair_partner)
    out[problem.pair_lead[match][::-1]] = match[::-1]
    return out


def _unit(problem: AllocationProblem) -> str:
    return "expected revenue" if problem.objective == "revenue" else "expected conversions"


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def rule_prices(problem: AllocationProblem, lead_partner: np.ndarray,
                prices: Prices) -> tuple[RulePrice, ...]:
    """Every non-trivial rule of the round with its use, whether it binds, and its price.

    Caps for every partner with an eligible lead; floors above zero; the per-partner
    maximum share; tier shares; quotas; ``assign_all``.
    """
    unit = _unit(problem)
    out: list[RulePrice] = []
    m = problem.n_partners
    lp = np.asarray(lead_partner, dtype=np.int64)
    on = lp >= 0
    count = np.bincount(lp[on], minlength=m)
    chosen = chosen_pairs(problem, lp)
    if problem.pair_effort is not None:
        load = np.bincount(lp[on], weights=problem.pair_effort[chosen[on]], minlength=m)
        cap_word = "effort units"
    else:
        load = count.astype(float)
        cap_word = "leads"
    has_pairs = np.bincount(problem.pair_partner, minlength=m) > 0
    cap_units = np.asarray(problem.capacity_units, dtype=float)
    mpp = problem.max_per_partner
    count_cap = prices.count_cap if prices.count_cap is not None else prices.cap
    for j in np.flatnonzero(has_pairs):
        pid = problem.partner_ids[j]
        cap_j = cap_units[j]
        binding = bool(load[j] >= cap_j - 1e-9)
        shared = mpp is not None and binding and count[j] >= mpp and problem.pair_effort is None
        price = float(prices.cap[j]) if binding and (mpp is None or cap_j <= mpp
                                                       or problem.pair_effort is not None) else 0.0
        if binding:
            desc = (f"{pid}'s capacity of {cap_j:g} {cap_word} was full; one more unit of "
                    f"capacity is worth {_fmt(price)} {unit}")
            if shared:
                desc += f" (the max share per partner, {mpp} leads, binds too)"
        else:
            desc = f"{pid} used {load[j]:g} of its capacity of {cap_j:g} {cap_word}"
        out.append(RulePrice(f"cap[partner={pid}]", "cap", binding, float(cap_j), float(load[j]),
                             price, prices.source, desc))
        if mpp is not None:
            b = bool(count[j] >= mpp)
            pr = float(count_cap[j]) if b and (mpp < cap_j or problem.pair_effort is not None) \
                else (float(prices.cap[j]) if b and shared else 0.0)
            desc = (f"{pid} reached the most leads one partner may get ({mpp}); one more is "
                    f"worth {_fmt(pr)} {unit}" if b else
                    f"{pid} received {count[j]} of the {mpp} leads one partner may get")
            out.append(RulePrice(f"max_share_per_partner[partner={pid}]", "max_share_per_partner",
                                 b, float(mpp), float(count[j]), pr, prices.source, desc))
        fl = int(problem.floor[j])
        if fl > 0:
            short = max(fl - int(count[j]), 0)
            b = bool(count[j] <= fl)
            pr = float(prices.floor[j]) if b else 0.0
            if short:
                desc = (f"{pid}'s floor of {fl} was missed by {short} lead(s) (soft floor, "
                        f"{_fmt(pr)} {unit} per lead)")
            elif b:
                desc = (f"{pid}'s floor of {fl} bound: it received exactly {count[j]}; one lead "
                        f"less of floor is worth {_fmt(pr)} {unit}")
            else:
                desc = f"{pid} received {count[j]} leads, above its floor of {fl}"
            out.append(RulePrice(f"floor[partner={pid}]", "floor", b, float(fl), float(count[j]),
                                 pr, prices.source, desc))

    names, tier_of, lo, hi = tier_limits(problem)
    tier_count = np.bincount(tier_of, weights=count, minlength=len(names))
    for rule in problem.tiers:
        k = int(np.flatnonzero(names == rule.name)[0])
        used = int(tier_count[k])
        if rule.max_share is not None:
            b = used >= hi[k]
            pr = float(prices.tier_max[k]) if b else 0.0
            desc = (f"tier {rule.name} took {used} leads, the most its max_share "
                    f"{rule.max_share:g} of {problem.round_size} allows"
                    + (f"; one more lead is worth {_fmt(pr)} {unit}" if b else f" is {hi[k]}"))
            out.append(RulePrice(rule.rule_name, "tier_max_share", bool(b), float(hi[k]),
                                 float(used), pr, prices.source, desc))
        if rule.min_share is not None:
            b = used <= lo[k] and lo[k] > 0
            pr = float(prices.tier_min[k]) if b else 0.0
            desc = (f"tier {rule.name} took {used} leads; its min_share {rule.min_share:g} of "
                    f"{problem.round_size} asks for {lo[k]}"
                    + (f"; one lead less is worth {_fmt(pr)} {unit}" if b else ""))
            out.append(RulePrice(rule.rule_name, "tier_min_share", bool(b), float(lo[k]),
                                 float(used), pr, prices.source, desc))

    keys, qlo, qhi, pair_group = quota_groups(problem)
    if keys:
        lead_group = np.where(on, pair_group[np.maximum(chosen, 0)] if problem.n_pairs else -1,
                              -1)
        qcount = np.bincount(lead_group[lead_group >= 0], minlength=len(keys))
        qsrc = prices.quota_source or prices.source
        for g, (tier, intent) in enumerate(keys):
            name = f"quota[tier={tier},intent={intent}]"
            used = int(qcount[g])
            if qhi[g] >= 0:
                b = used >= qhi[g]
                pr = float(prices.quota_max[g]) if b else 0.0
                desc = (f"tier {tier} took {used} {intent}-intent leads; its quota allows "
                        f"{qhi[g]}" + (f"; one more is worth {_fmt(pr)} {unit}" if b else ""))
                out.append(RulePrice(name, "quota_max", bool(b), float(qhi[g]), float(used), pr,
                                     qsrc, desc))
            if qlo[g] > 0:
                b = used <= qlo[g]
                pr = float(prices.quota_min[g]) if b else 0.0
                desc = (f"tier {tier} took {used} {intent}-intent leads; its quota asks for "
                        f"{qlo[g]}" + (f"; one less is worth {_fmt(pr)} {unit}" if b else ""))
                out.append(RulePrice(name, "quota_min", bool(b), float(qlo[g]), float(used), pr,
                                     qsrc, desc))
    if problem.assign_all:
        pr = float(prices.assign_all)
        out.append(RulePrice("assign_all", "assign_all", pr > 0, float(problem.n_leads),
                             float(on.sum()), pr, prices.source,
                             f"every one of the {problem.n_leads} leads had to be placed; "
                             f"leaving the least valuable one unassigned is worth {_fmt(pr)} "
                             f"{unit}"))
    return tuple(out)


LP_SOURCE = "LP dual (GLOP)"


def lp_prices(problem: AllocationProblem, model: LinearModel, duals: np.ndarray,
              source: str = LP_SOURCE) -> Prices:
    """Rule prices from the row duals of the LP (``∂objective/∂bound``, GLOP).

    A ranged row's dual says which side binds: positive for the upper bound
    (capacity, a tier's or quota's maximum), negative for the lower (floor,
    minimum).  At a degenerate optimum an LP dual is one of several valid ones;
    the network prices are exact marginal values and are preferred when they apply.
    """
    base = zero_prices(problem, source)

    def part(name: str) -> np.ndarray:
        return duals[model.rows[name]] if name in model.rows else np.zeros(0)

    count = part("count")
    cap = np.maximum(count, 0.0)
    floor = np.maximum(-count, 0.0)
    count_cap = None
    if "effort" in model.rows:
        count_cap = cap
        cap = np.maximum(part("effort"), 0.0)
    soft = part("soft_floor")
    if soft.size:
        floor = floor.copy()
        floor[model.shortfall_partner] = np.maximum(-soft, 0.0)
    tier = part("tier")
    quota = part("quota")
    lead = part("lead")
    assign_all = float(max(0.0, float(np.max(-lead)))) if problem.assign_all and lead.size \
        else 0.0
    return Prices(cap=cap, floor=floor, tier_max=np.maximum(tier, 0.0),
                  tier_min=np.maximum(-tier, 0.0),
                  quota_max=np.maximum(quota, 0.0) if quota.size else base.quota_max,
                  quota_min=np.maximum(-quota, 0.0) if quota.size else base.quota_min,
                  assign_all=assign_all, source=source, count_cap=count_cap)


@dataclass(frozen=True, eq=False)
class Outcome:
    """What a solver path hands back to :func:`allocator.solve.solve`.

    ``objective`` is the sum of scores; ``penalized_bound`` a proven upper bound on
    ``objective − penalty × Σ shortfall`` (just ``objective``'s bound in hard mode);
    ``prices`` is called under the "prices" timer.
    """

    status: str
    lead_pair: np.ndarray
    objective: float
    penalized_bound: float
    method: str
    prices: Callable[[], Prices]
    shortfall: np.ndarray | None = None
    penalty: float = 0.0
    notes: tuple[str, ...] = ()
