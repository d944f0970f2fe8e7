"""The network core: one round as a min-cost flow (OR-Tools ``SimpleMinCostFlow``).

Nodes: leads, partners, tiers, sink.  Arcs, in this order (pair arcs first, so
arc ``p`` is pair ``p``):

* lead → partner, capacity 1, cost ``−round(score × scale)`` (one per eligible pair);
* lead → sink, capacity 1, cost 0: "left unassigned" (absent when ``assign_all``);
* partner → tier, capacity ``min(capacity, max_per_partner)`` with lower bound
  the floor (hard mode), or two parallel arcs in soft mode: the *floor arc*
  (capacity = floor, cost ``−penalty``: each floor lead met earns the penalty
  back, so a missed one costs it) and the rest (cost 0);
* tier → sink, capacity the tier's most leads, lower bound its least.

Every lead supplies one unit and the sink absorbs them all.  Lower bounds are
shifted into node supplies (``supply[tail] −= lo``, ``supply[head] += lo``).
The constraint matrix is totally unimodular, so the integral optimum of the
flow is the optimum of the assignment problem; no MIP is involved.

Scale: costs must be integers.  ``scale`` is the power of ten that makes the
largest ``|score|`` at most ``2**30`` (rounding error ≤ 5e-9 of the largest
score; decimal scores stay exact) unless the int64 range
OR-Tools needs (it multiplies costs by ``num_nodes + 1`` internally) or the
soft-floor penalty ask for less.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from ortools.graph.python import min_cost_flow

from allocator.build import tier_limits
from allocator.problem import AllocationProblem

INT64_MAX = int(np.iinfo(np.int64).max)
SCORE_RESOLUTION = 2.0**30
FAMILIES = ("floor", "tier_min", "tier_max", "max_share", "assign_all")


@dataclass(frozen=True, eq=False)
class NetworkSpec:
    """The network rules of a problem as integers.

    Attributes
    ----------
    cap : ndarray of int64
        Per partner, most leads: ``min(capacity, max_per_partner)``.  With
        effort-weighted capacity, the relaxation ``capacity / smallest effort``.
    capacity_leads : ndarray of int64
        Per partner, the capacity alone (in leads; relaxed as above with effort).
    floor : ndarray of int64
    tier_names : ndarray of str
    partner_tier : ndarray of int64
    tier_lo, tier_hi : ndarray of int64
    assign_all, soft : bool
    relaxed : frozenset of str
        Rule families dropped (for diagnosis), from :data:`FAMILIES`.
    """

    cap: np.ndarray
    capacity_leads: np.ndarray
    floor: np.ndarray
    tier_names: np.ndarray
    partner_tier: np.ndarray
    tier_lo: np.ndarray
    tier_hi: np.ndarray
    assign_all: bool
    soft: bool
    relaxed: frozenset[str] = frozenset()


def network_spec(problem: AllocationProblem, relax: frozenset[str] = frozenset()) -> NetworkSpec:
    """Integer limits of ``problem``'s network, with the families in ``relax`` dropped."""
    unknown = set(relax) - set(FAMILIES)
    if unknown:
        raise ValueError(f"Unknown rule families {sorted(unknown)}; known: {list(FAMILIES)}.")
    m = problem.n_partners
    units = np.asarray(problem.capacity_units, dtype=np.float64)
    if problem.pair_effort is None:
        capacity = np.floor(units + 1e-9)
    else:
        # Each lead costs a partner at least its cheapest eligible effort: a valid relaxation.
        least = np.full(m, np.inf)
        np.minimum.at(least, problem.pair_partner, problem.pair_effort)
        capacity = np.where(np.isfinite(least), np.floor(units / np.where(
            np.isfinite(least), least, 1.0) + 1e-9), 0.0)
    capacity = np.clip(capacity, 0, problem.n_leads).astype(np.int64)
    cap = capacity.copy()
    if problem.max_per_partner is not None and "max_share" not in relax:
        cap = np.minimum(cap, max(int(problem.max_per_partner), 0))
    floor = np.asarray(problem.floor, dtype=np.int64).copy()
    if "floor" in relax:
        floor[:] = 0
    names, partner_tier, lo, hi = tier_limits(problem)
    if "tier_min" in relax:
        lo[:] = 0
    if "tier_max" in relax:
        hi[:] = problem.n_leads
    return NetworkSpec(cap=cap, capacity_leads=capacity, floor=np.maximum(floor, 0),
                       tier_names=names, partner_tier=partner_tier, tier_lo=lo, tier_hi=hi,
                       assign_all=problem.assign_all and "assign_all" not in relax,
                       soft=problem.floor_mode == "soft", relaxed=frozenset(relax))


@dataclass(frozen=True)
class Scale:
    """Integer cost scale of a network and the soft-floor penalty in scaled units."""

    factor: float
    penalty: int = 0
    penalty_value: float = 0.0


def default_floor_penalty(problem: AllocationProblem) -> float:
    """A soft-floor penalty above what any floor lead can cost elsewhere.

    A simple cycle of the residual network re-assigns at most one lead per
    partner it passes (plus one through the sink), each move losing at most
    ``2 × max|score|``; a penalty above ``2 × max|score| × (partners + 1)`` makes
    every cycle that meets one more floor lead profitable, so the optimum
    misses as few floor leads as possible, then maximizes the score.
    """
    smax = float(np.max(np.abs(problem.pair_score))) if problem.n_pairs else 1.0
    n_active = int(np.unique(problem.pair_partner).shape[0]) if problem.n_pairs else 0
    return 2.0 * max(smax, 1e-12) * (n_active + 1) + max(smax, 1e-12)


def choose_scale(problem: AllocationProblem, spec: NetworkSpec, headroom: float = 4.0) -> Scale:
    """Integer cost scale for ``problem``.

    Parameters
    ----------
    headroom : float
        Largest cost magnitude to fit, in multiples of ``max|score|`` (Lagrange
        multipliers add to pair costs).
    """
    n_nodes = problem.n_leads + problem.n_partners + spec.tier_names.shape[0] + 1
    limit = INT64_MAX // (2 * (n_nodes + 1)) // 64
    smax = float(np.max(np.abs(problem.pair_score))) if problem.n_pairs else 1.0
    smax = max(smax, 1e-12)
    biggest = smax * headroom
    penalty_value = 0.0
    if spec.soft and np.any(spec.floor > 0):
        penalty_value = float(problem.floor_penalty) if problem.floor_penalty is not None \
            else default_floor_penalty(problem)
        biggest = max(biggest, penalty_value * 2.0)
    # Per-lead totals must also stay far inside int64.
    limit = min(limit, INT64_MAX // (8 * max(problem.n_leads, 1)))
    factor = min(SCORE_RESOLUTION / smax, limit / biggest)
    # A power of ten keeps decimal scores exact, so prices read back as the decimals they are.
    factor = 10.0 ** math.floor(math.log10(factor))
    penalty = round(penalty_value * factor)
    return Scale(factor=factor, penalty=penalty, penalty_value=penalty_value)


@dataclass(frozen=True, eq=False)
class FlowSolution:
    """An optimal flow (or the verdict that none exists).

    Attributes
    ----------
    status : "optimal" or "infeasible"
    pair_flow : ndarray of bool
        Per pair, whether it is chosen.
    lead_pair : ndarray of int64
        Per lead, chosen pair or ``-1``.
    partner_count : ndarray of int64
        Per partner, leads received.
    shortfall : ndarray of int64 or None
        Soft mode: per partner, leads its floor is missed by.
    pair_cost : ndarray of int64
        Scaled integer cost of each pair arc as solved (Lagrange terms included).
    scale : Scale
    spec : NetworkSpec
    value : float
        Sum of ``pair_score`` over the chosen pairs.
    cost : int
        The min-cost objective in scaled units (pair costs minus penalties earned).
    """

    status: str
    pair_flow: np.ndarray
    lead_pair: np.ndarray
    partner_count: np.ndarray
    shortfall: np.ndarray | None
    pair_cost: np.ndarray
    scale: Scale
    spec: NetworkSpec
    value: float = 0.0
    cost: int = 0
    extra: dict[str, float] = field(default_factory=dict)


def _infeasible(problem: AllocationProblem, spec: NetworkSpec, pair_cost: np.ndarray,
                scale: Scale) -> FlowSolution:
    return FlowSolution(
        status="infeasible", pair_flow=np.zeros(problem.n_pairs, dtype=bool),
        lead_pair=np.full(problem.n_leads, -1, dtype=np.int64),
        partner_count=np.zeros(problem.n_partners, dtype=np.int64), shortfall=None,
        pair_cost=pair_cost, scale=scale, spec=spec)


def rounding_slack(problem: AllocationProblem, scale: Scale) -> float:
    """How far the true optimum can be above a flow optimal for the rounded costs.

    Each pair's value changes by at most ``e = max|s·f − round(s·f)| / f`` when
    rounded, and at most ``n_leads`` pairs are chosen, so ``2 · n_leads · e``.
    """
    if not problem.n_pairs:
        return 0.0
    scaled = problem.pair_score * scale.factor
    err = float(np.max(np.abs(scaled - np.rint(scaled)))) / scale.factor
    return 2.0 * problem.n_leads * err


def pair_costs(problem: AllocationProblem, scale: Scale,
               cost_offset: np.ndarray | None = None) -> np.ndarray:
    """Scaled integer arc costs of the pairs: ``−round(score × scale) + offset``."""
    cost = -np.rint(problem.pair_score * scale.factor).astype(np.int64)
    if cost_offset is not None:
        cost += cost_offset.astype(np.int64)
    return cost


def solve_network(problem: AllocationProblem, spec: NetworkSpec | None = None, *,
                  scale: Scale | None = None,
                  cost_offset: np.ndarray | None = None) -> FlowSolution:
    """Solve the network core of ``problem`` exactly.

    Parameters
    ----------
    problem : AllocationProblem
    spec : NetworkSpec, optional
        Defaults to :func:`network_spec` of ``problem`` (every rule kept).
    scale : Scale, optional
        Defaults to :func:`choose_scale`.
    cost_offset : ndarray of int64, optional
        Added to each pair's scaled cost (Lagrange multipliers of side constraints).

    Returns
    -------
    FlowSolution
        ``status == "infeasible"`` when no flow meets the hard rules.
    """
    spec = network_spec(problem) if spec is None else spec
    scale = choose_scale(problem, spec) if scale is None else scale
    cost = pair_costs(problem, scale, cost_offset)
    n, m, t = problem.n_leads, problem.n_partners, spec.tier_names.shape[0]
    floor = spec.floor
    if spec.soft:
        floor_met = np.minimum(floor, spec.cap)
        rest = spec.cap - floor_met
    else:
        if np.any(floor > spec.cap) or np.any(spec.tier_lo > spec.tier_hi):
            return _infeasible(problem, spec, cost, scale)
        rest = spec.cap - floor
    if np.any(spec.tier_hi < spec.tier_lo):
        return _infeasible(problem, spec, cost, scale)

    sink = n + m + t
    partner_node = np.arange(n, n + m, dtype=np.int32)
    tier_node = (n + m + spec.partner_tier).astype(np.int32)
    tails = [problem.pair_lead.astype(np.int32)]
    heads = [(problem.pair_partner + n).astype(np.int32)]
    caps = [np.ones(problem.n_pairs, dtype=np.int64)]
    costs = [cost]
    if not spec.assign_all:
        tails.append(np.arange(n, dtype=np.int32))
        heads.append(np.full(n, sink, dtype=np.int32))
        caps.append(np.ones(n, dtype=np.int64))
        costs.append(np.zeros(n, dtype=np.int64))
    first_partner_arc = sum(a.shape[0] for a in tails)
    tails.append(partner_node)
    heads.append(tier_node)
    caps.append(rest.astype(np.int64))
    costs.append(np.zeros(m, dtype=np.int64))
    if spec.soft:
        tails.append(partner_node)
        heads.append(tier_node)
        caps.append(floor_met.astype(np.int64))
        costs.append(np.full(m, -scale.penalty, dtype=np.int64))
    tails.append(np.arange(n + m, n + m + t, dtype=np.int32))
    heads.append(np.full(t, sink, dtype=np.int32))
    caps.append((spec.tier_hi - spec.tier_lo).astype(np.int64))
    costs.append(np.zeros(t, dtype=np.int64))

    supply = np.zeros(sink + 1, dtype=np.int64)
    supply[:n] = 1
    supply[sink] = -n
    if not spec.soft:
        supply[n:n + m] -= floor
        np.add.at(supply, n + m + spec.partner_tier, floor)
    supply[n + m:n + m + t] -= spec.tier_lo
    supply[sink] += int(spec.tier_lo.sum())

    smcf = min_cost_flow.SimpleMinCostFlow()
    smcf.add_arcs_with_capacity_and_unit_cost(
        np.concatenate(tails), np.concatenate(heads), np.concatenate(caps),
        np.concatenate(costs))
    del tails, heads, caps, costs
    smcf.set_nodes_supplies(np.arange(sink + 1, dtype=np.int32), supply)
    status = smcf.solve()
    if status == smcf.INFEASIBLE:
        return _infeasible(problem, spec, cost, scale)
    if status != smcf.OPTIMAL:
        raise RuntimeError(f"The min-cost flow solver returned status {status!r} "
                           f"(scale {scale.factor:.3g}, {smcf.num_arcs()} arcs).")
    flow = np.asarray(smcf.flows(np.arange(problem.n_pairs, dtype=np.int32)))
    chosen = flow > 0
    lead_pair = np.full(n, -1, dtype=np.int64)
    lead_pair[problem.pair_lead[chosen]] = np.flatnonzero(chosen)
    count = np.bincount(problem.pair_partner[chosen], minlength=m).astype(np.int64)
    shortfall = None
    total = int(cost[chosen].sum())
    if spec.soft:
        met = np.asarray(smcf.flows(np.arange(first_partner_arc + m, first_partner_arc + 2 * m,
                                              dtype=np.int32)))
        shortfall = (floor - met).astype(np.int64)
        total -= scale.penalty * int(met.sum())
    return FlowSolution(status="optimal", pair_flow=chosen, lead_pair=lead_pair,
                        partner_count=count, shortfall=shortfall, pair_cost=cost, scale=scale,
                        spec=spec, value=float(problem.pair_score[chosen].sum()), cost=total)
