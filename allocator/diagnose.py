"""Why a hard policy has no allocation, in words and numbers.

Two stages:

* :func:`precheck` — cheap counting and Hall-type checks run before solving,
  each a *necessary* condition, so a failed check is a proof of infeasibility:
  a partner's floor against what it can take; a tier's floors and minimum share
  against the leads eligible for it and its maximum share; the tier minimums
  together against the leads the round can place; ``assign_all`` against the
  room partners and tier maximums leave (maximum flow); all floors together
  against the distinct leads able to meet them (maximum flow, the deficient
  partners read off the minimum cut); quota minimums against eligible leads.
* :func:`find_conflicts` — after a solver found no solution, each rule family
  (floors, tier minimums, tier maximums, max share per partner, assign_all,
  quotas) is relaxed in turn; the families whose relaxation alone makes the
  round feasible are the rules in conflict (pairs are tried when no single one
  does).

:func:`diagnose` runs both and returns an :class:`InfeasiblePolicyError`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import numpy as np
from ortools.graph.python import max_flow

from allocator.build import quota_groups
from allocator.errors import InfeasiblePolicyError
from allocator.flow import NetworkSpec, network_spec, solve_network
from allocator.linear import LinearModel
from allocator.problem import AllocationProblem

_SHOWN = 4


@dataclass(frozen=True)
class Conflict:
    """One reason, in words and numbers, and the stable names of the rules involved."""

    text: str
    rules: tuple[str, ...]


def _list(ids: np.ndarray) -> str:
    shown = ", ".join(str(x) for x in ids[:_SHOWN])
    return shown + (f" and {len(ids) - _SHOWN} more" if len(ids) > _SHOWN else "")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _leads(n: int | np.integer) -> str:
    return _plural(int(n), "lead")


def _bipartite_max_flow(problem: AllocationProblem, pair_mask: np.ndarray,
                        partner_cap: np.ndarray) -> tuple[int, np.ndarray]:
    """Max flow source → lead (1) → partner (cap) → sink; also the sink-side partners."""
    n, m = problem.n_leads, problem.n_partners
    source, sink = n + m, n + m + 1
    mf = max_flow.SimpleMaxFlow()
    pl, pp = problem.pair_lead[pair_mask], problem.pair_partner[pair_mask]
    mf.add_arcs_with_capacity(
        np.concatenate([np.full(n, source), pl, n + np.arange(m)]).astype(np.int32),
        np.concatenate([np.arange(n), n + pp, np.full(m, sink)]).astype(np.int32),
        np.concatenate([np.ones(n + pl.shape[0]), partner_cap]).astype(np.int64))
    if mf.solve(source, sink) != mf.OPTIMAL:  # pragma: no cover - int64 overflow only
        raise RuntimeError("Max flow failed while diagnosing the policy.")
    sink_side = np.asarray(mf.get_sink_side_min_cut(), dtype=np.int64)
    partners = sink_side[(sink_side >= n) & (sink_side < n + m)] - n
    return int(mf.optimal_flow()), partners


def precheck(problem: AllocationProblem, spec: NetworkSpec | None = None, *,
             hall: bool = True) -> list[Conflict]:
    """Counting and Hall-type checks; every conflict returned proves infeasibility.

    Parameters
    ----------
    hall : bool
        Run the two maximum flows (leads the round can place; leads able to meet
        the floors).  Without them the checks are linear-time counts, cheap enough
        to run before every solve; :func:`diagnose` runs them all.
    """
    spec = network_spec(problem) if spec is None else spec
    out: list[Conflict] = []
    m = problem.n_partners
    pid = problem.partner_ids
    hard_floor = not spec.soft
    floor, cap = spec.floor, spec.cap
    n_elig = np.bincount(problem.pair_partner, minlength=m)
    if hard_floor:
        for j in np.flatnonzero(floor > np.minimum(cap, n_elig)):
            limit = "max share" if cap[j] < spec.capacity_leads[j] else "capacity"
            out.append(Conflict(
                f"floor[partner={pid[j]}] asks for {_leads(floor[j])} but {pid[j]} can take at "
                f"most {min(cap[j], n_elig[j])} ({limit} {cap[j]}, eligible for "
                f"{_plural(int(n_elig[j]), 'lead')})", (f"floor[partner={pid[j]}]",)))
    names, tier_of = spec.tier_names, spec.partner_tier
    t = names.shape[0]
    usable = cap[problem.pair_partner] > 0
    lead_tier = np.zeros((problem.n_leads, max(t, 1)), dtype=bool)
    lead_tier[problem.pair_lead[usable], tier_of[problem.pair_partner[usable]]] = True
    tier_elig = lead_tier.sum(axis=0)[:t]
    tier_room = np.bincount(tier_of, weights=cap, minlength=t).astype(np.int64)
    tier_floor = np.bincount(tier_of, weights=floor, minlength=t).astype(np.int64)
    floor_rules = {k: tuple(f"floor[partner={pid[j]}]" for j in np.flatnonzero(
        (tier_of == k) & (floor > 0))) for k in range(t)} if hard_floor else {}
    for k in range(t):
        tier_rule = f"tier_share[tier={names[k]}]"
        if hard_floor and tier_floor[k] > tier_elig[k]:
            out.append(Conflict(
                f"floors need {_leads(tier_floor[k])} but only {tier_elig[k]} qualified leads are "
                f"eligible for tier {names[k]}", floor_rules[k]))
        if hard_floor and tier_floor[k] > spec.tier_hi[k]:
            out.append(Conflict(
                f"floors of tier {names[k]} need {_leads(tier_floor[k])} but {tier_rule} allows "
                f"at most {spec.tier_hi[k]}", (*floor_rules[k], tier_rule)))
        if spec.tier_lo[k] > min(tier_elig[k], tier_room[k]):
            verb = "is" if tier_elig[k] == 1 else "are"
            why = (f"only {_leads(tier_elig[k])} {verb} eligible for it"
                   if tier_elig[k] <= tier_room[k]
                   else f"its partners can take at most {tier_room[k]}")
            out.append(Conflict(f"{tier_rule} asks for at least {_leads(spec.tier_lo[k])} in tier "
                                f"{names[k]} but {why}", (tier_rule,)))
    if hall:
        placeable, _ = _bipartite_max_flow(problem, np.ones(problem.n_pairs, bool), cap)
    else:  # an upper bound: leads with a usable pair, and the room partners have
        placeable = min(int(lead_tier.any(axis=1).sum()), int(cap.sum()))
    lo_total = int(spec.tier_lo.sum())
    if lo_total > placeable:
        rules = tuple(f"tier_share[tier={names[k]}]" for k in np.flatnonzero(spec.tier_lo > 0))
        out.append(Conflict(f"tier minimum shares ask for {_leads(lo_total)} in total but the "
                            f"round can place at most {placeable}", rules))
    if spec.assign_all:
        n = problem.n_leads
        if placeable < n:
            out.append(Conflict(
                f"assign_all needs all {_leads(n)} placed but partners can take at most "
                f"{placeable} of them (eligibility, capacity and max share)", ("assign_all",)))
        elif int(spec.tier_hi.sum()) < n:
            rules = ("assign_all", *(r.rule_name for r in problem.tiers
                                     if r.max_share is not None))
            out.append(Conflict(f"assign_all needs all {_leads(n)} placed but tier maximum shares "
                                f"allow at most {int(spec.tier_hi.sum())}", rules))
    total_floor = int(floor.sum()) if hard_floor else 0
    if total_floor and hall:
        met, sink_side = _bipartite_max_flow(problem, np.ones(problem.n_pairs, bool),
                                             np.minimum(floor, cap))
        if met < total_floor:
            short = np.sort(sink_side[floor[sink_side] > 0])
            need = int(floor[short].sum())
            leads = np.unique(problem.pair_lead[np.isin(problem.pair_partner, short)])
            verb = "is" if len(leads) == 1 else "are"
            out.append(Conflict(
                f"floors of {_plural(len(short), 'partner')} ({_list(pid[short])}) need "
                f"{_leads(need)} but only {len(leads)} distinct {_leads(len(leads)).split()[1]} "
                f"{verb} eligible for any of them",
                tuple(f"floor[partner={pid[j]}]" for j in short)))
    keys, qlo, _, group = quota_groups(problem)
    for g, (tier, intent) in enumerate(keys):
        if qlo[g] <= 0:
            continue
        has = np.zeros(problem.n_leads, dtype=bool)
        has[problem.pair_lead[(group == g) & usable]] = True
        elig = int(has.sum())
        name = f"quota[tier={tier},intent={intent}]"
        if qlo[g] > elig:
            out.append(Conflict(f"{name} asks for {qlo[g]} {intent}-intent leads in tier {tier} "
                                f"but only {elig} are eligible for it", (name,)))
    return out


def _family_rules(problem: AllocationProblem, spec: NetworkSpec, family: str) -> tuple[str, ...]:
    pid = problem.partner_ids
    if family == "floor":
        return tuple(f"floor[partner={pid[j]}]" for j in np.flatnonzero(spec.floor > 0))
    if family == "tier_min":
        return tuple(r.rule_name for r in problem.tiers if r.min_share is not None)
    if family == "tier_max":
        return tuple(r.rule_name for r in problem.tiers if r.max_share is not None)
    if family == "max_share":
        limited = np.flatnonzero(spec.capacity_leads > spec.cap)
        return tuple(f"max_share_per_partner[partner={pid[j]}]" for j in limited)
    if family == "assign_all":
        return ("assign_all",)
    return tuple(q.rule_name for q in problem.quotas)


def _family_text(problem: AllocationProblem, spec: NetworkSpec, family: str) -> str:
    if family == "floor":
        k = int(np.count_nonzero(spec.floor > 0))
        return (f"partner floors ({_leads(int(spec.floor.sum()))} in total over "
                f"{_plural(k, 'partner')})")
    if family in ("tier_min", "tier_max"):
        bound = spec.tier_lo if family == "tier_min" else spec.tier_hi
        word = "minimum" if family == "tier_min" else "maximum"
        parts = [f"{r.name} {bound[int(np.flatnonzero(spec.tier_names == r.name)[0])]}"
                 for r in problem.tiers
                 if (r.min_share if family == "tier_min" else r.max_share) is not None]
        return f"tier {word} shares (in leads: {', '.join(parts)})"
    if family == "max_share":
        return (f"the max share per partner ({problem.max_per_partner} leads of a round of "
                f"{problem.round_size})")
    if family == "assign_all":
        return f"assign_all (all {problem.n_leads} leads must be placed)"
    keys, qlo, qhi, _ = quota_groups(problem)
    parts = [f"{t}/{i} " + (f"≥{lo_}" if lo_ > 0 else "") + (" " if lo_ > 0 and hi_ >= 0 else "")
             + (f"≤{hi_}" if hi_ >= 0 else "") for (t, i), lo_, hi_ in zip(keys, qlo, qhi,
                                                                          strict=True)]
    return f"tier quotas ({', '.join(parts)} leads)"


def _feasible(problem: AllocationProblem, relax: frozenset[str], time_limit_s: float) -> bool:
    """Whether the round has an allocation with the families in ``relax`` dropped.

    The network alone decides it without quotas and effort; otherwise the 0–1
    model (CP-SAT) does, or its LP relaxation on very large rounds.
    """
    spec = network_spec(problem, relax - {"quota"})
    if precheck(problem, spec):
        return False
    network = solve_network(problem, spec).status == "optimal"
    unit_only = (not problem.quotas or "quota" in relax) and problem.pair_effort is None
    if not network or unit_only:
        return network
    from allocator.linear import linear_model, solve_lp, solve_mip

    quotas = "quota" not in relax
    if problem.n_pairs > 200_000:
        return solve_lp(linear_model(problem, spec, quotas=quotas), time_limit_s).status \
            == "optimal"
    model = linear_model(problem, spec, quotas=quotas, integral=True)
    zero = replace_objective(model)
    return solve_mip(zero, problem.n_leads, time_limit_s).status in ("optimal", "feasible")


def replace_objective(model: LinearModel) -> LinearModel:
    """The same model with a zero objective (a pure feasibility question)."""
    return replace(model, obj=np.zeros_like(model.obj))


def find_conflicts(problem: AllocationProblem, time_limit_s: float = 10.0) -> list[Conflict]:
    """Rule families whose relaxation alone (or in pairs) makes the round feasible."""
    spec = network_spec(problem)
    families = []
    if not spec.soft and np.any(spec.floor > 0):
        families.append("floor")
    if np.any(spec.tier_lo > 0):
        families.append("tier_min")
    if any(r.max_share is not None for r in problem.tiers):
        families.append("tier_max")
    if problem.max_per_partner is not None and np.any(spec.capacity_leads > spec.cap):
        families.append("max_share")
    if spec.assign_all:
        families.append("assign_all")
    if problem.quotas:
        families.append("quota")
    for size in (1, 2, 3):
        found = [combo for combo in itertools.combinations(families, size)
                 if _feasible(problem, frozenset(combo), time_limit_s)]
        if not found:
            continue
        if size == 1 and len(found) > 1:
            texts = [_family_text(problem, spec, combo[0]) for combo in found]
            rules = tuple(r for combo in found for r in _family_rules(problem, spec, combo[0]))
            return [Conflict(f"{', '.join(texts[:-1])} and {texts[-1]} cannot all hold in this "
                             "round: relaxing any one of them makes it feasible", rules)]
        out = []
        for combo in found:
            texts = [_family_text(problem, spec, f) for f in combo]
            rules = tuple(r for f in combo for r in _family_rules(problem, spec, f))
            what = " together with ".join(texts)
            out.append(Conflict(
                f"{what} cannot be met with the eligibility and capacity of the round"
                + ("" if len(families) == size else " and its other rules")
                + f"; relaxing {'it' if size == 1 else 'them'} makes the round feasible", rules))
        return out
    rules = tuple(r for f in families for r in _family_rules(problem, spec, f))
    return [Conflict("no allocation meets the eligibility and capacity of the round together "
                     f"with {', '.join(_family_text(problem, spec, f) for f in families)}",
                     rules)]


def diagnose(problem: AllocationProblem, time_limit_s: float = 10.0) -> InfeasiblePolicyError:
    """The error explaining why ``problem`` (hard rules) has no allocation."""
    conflicts = precheck(problem) or find_conflicts(problem, time_limit_s)
    rules = list(dict.fromkeys(r for c in conflicts for r in c.rules))
    return InfeasiblePolicyError([c.text for c in conflicts], rules)
