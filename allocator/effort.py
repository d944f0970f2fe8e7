"""Effort-weighted capacity: a generalized assignment problem, solved with CP-SAT.

When leads cost a partner different workload, ``Σ effort × x ≤ capacity`` is a
knapsack row per partner and the problem is NP-hard.  The method:

1. **Relaxation bound.**  Every lead costs a partner at least its cheapest
   eligible effort, so ``capacity / smallest effort`` leads is a relaxation of
   the knapsack row; the min-cost flow with those counts (and every other
   rule) gives a proven upper bound in one exact flow.  When its solution
   happens to respect the real efforts (and quotas), it is optimal outright.
2. **Hint.**  That flow, repaired: a partner over its effort capacity keeps its
   best-scoring leads that fit.
3. **CP-SAT** on the 0–1 model of the whole round (:mod:`allocator.linear`:
   floors, tier shares, quotas, max share, ``assign_all``, efforts scaled to
   integers and rounded up so every solution is feasible), ``num_workers = 2``,
   under the time limit; its ``best_objective_bound`` and the relaxation bound
   both bound the optimum, and the smaller is reported with the gap.

Prices come from the LP relaxation's duals (GLOP), per effort unit.
"""

from __future__ import annotations

import time

import numpy as np

from allocator.build import quota_groups
from allocator.flow import network_spec, rounding_slack, solve_network
from allocator.linear import linear_model, solve_lp, solve_mip
from allocator.prices import Outcome, Prices, lp_prices, zero_prices
from allocator.problem import AllocationProblem

RELAXATION_SOURCE = "LP relaxation dual (GLOP)"


def effort_load(problem: AllocationProblem, pair_flow: np.ndarray) -> np.ndarray:
    """Per partner, the effort units of the chosen pairs."""
    eff = problem.pair_effort if problem.pair_effort is not None else np.ones(problem.n_pairs)
    return np.bincount(problem.pair_partner[pair_flow], weights=eff[pair_flow],
                       minlength=problem.n_partners)


def repair(problem: AllocationProblem, pair_flow: np.ndarray) -> np.ndarray:
    """Drop, per partner over its effort capacity, its lowest-scoring leads until it fits."""
    eff = problem.pair_effort if problem.pair_effort is not None else np.ones(problem.n_pairs)
    chosen = np.flatnonzero(pair_flow)
    part = problem.pair_partner[chosen]
    order = np.lexsort((-problem.pair_score[chosen], part))
    chosen, part = chosen[order], part[order]
    cum = np.cumsum(eff[chosen])
    starts = np.searchsorted(part, np.arange(problem.n_partners))
    before = np.where(starts > 0, cum[np.maximum(starts - 1, 0)], 0.0) if cum.size else \
        np.zeros(problem.n_partners)
    within = cum - before[part]
    keep = within <= np.asarray(problem.capacity_units)[part] + 1e-9
    out = np.zeros(problem.n_pairs, dtype=bool)
    out[chosen[keep]] = True
    return out


def _meets_side_rules(problem: AllocationProblem, pair_flow: np.ndarray) -> bool:
    load = effort_load(problem, pair_flow)
    if np.any(load > np.asarray(problem.capacity_units) + 1e-9):
        return False
    _, lo, hi, group = quota_groups(problem)
    if lo.size:
        c = np.bincount(group[pair_flow & (group >= 0)], minlength=lo.shape[0])
        if np.any(c < lo) or np.any((hi >= 0) & (c > hi)):
            return False
    return True


def _lead_pair(problem: AllocationProblem, pair_flow: np.ndarray) -> np.ndarray:
    out = np.full(problem.n_leads, -1, dtype=np.int64)
    out[problem.pair_lead[pair_flow]] = np.flatnonzero(pair_flow)
    return out


def solve_effort(problem: AllocationProblem, time_limit_s: float) -> Outcome:
    """Solve a round whose leads cost partners different effort (see module docstring)."""
    started = time.perf_counter()
    spec = network_spec(problem)
    relaxed = solve_network(problem, spec)
    if relaxed.status != "optimal":
        return Outcome("infeasible", np.full(problem.n_leads, -1), 0.0, np.inf, "min_cost_flow",
                       lambda: zero_prices(problem, ""))
    penalty = relaxed.scale.penalty_value
    short = 0 if relaxed.shortfall is None else int(relaxed.shortfall.sum())
    bound = relaxed.value - penalty * short + rounding_slack(problem, relaxed.scale)
    notes = ["effort-weighted capacity: bound from the flow with capacity / smallest effort "
             "leads per partner"]

    lp_model = linear_model(problem, spec)

    def prices() -> Prices:
        remaining = max(started + 2.0 * time_limit_s - time.perf_counter(), 1.0)
        lp = solve_lp(lp_model, remaining)
        if lp.status != "optimal" or lp.duals is None:
            return zero_prices(problem, "unavailable (LP relaxation not solved in time)")
        return lp_prices(problem, lp_model, lp.duals, RELAXATION_SOURCE)

    def shortfall(pair_flow: np.ndarray) -> np.ndarray | None:
        if problem.floor_mode != "soft":
            return None
        count = np.bincount(problem.pair_partner[pair_flow], minlength=problem.n_partners)
        return np.maximum(np.asarray(problem.floor, dtype=np.int64) - count, 0)

    if _meets_side_rules(problem, relaxed.pair_flow):
        notes.append("the relaxation's flow respects every effort: optimal")
        return Outcome("optimal", relaxed.lead_pair, relaxed.value, bound, "min_cost_flow",
                       prices, shortfall=relaxed.shortfall, penalty=penalty, notes=tuple(notes))
    hint_flow = repair(problem, relaxed.pair_flow)
    model = linear_model(problem, spec, integral=True)
    hint = np.zeros(model.obj.shape[0])
    hint[:problem.n_pairs] = hint_flow
    hint_short = shortfall(hint_flow)
    if model.shortfall_partner.size and hint_short is not None:
        hint[problem.n_pairs:] = np.minimum(hint_short[model.shortfall_partner],
                                            model.var_hi[problem.n_pairs:])
    remaining = max(started + time_limit_s - time.perf_counter(), 0.5)
    mip = solve_mip(model, problem.n_leads, remaining, hint)
    notes.append(f"CP-SAT (2 workers, {remaining:.1f} s limit): {mip.status}")
    if mip.status == "infeasible":
        return Outcome("infeasible", np.full(problem.n_leads, -1), 0.0, np.inf, "cp_sat",
                       lambda: zero_prices(problem, ""))
    if mip.status == "time_limit":
        from allocator.verify import verify

        lead_pair = _lead_pair(problem, hint_flow)
        lead_partner = np.where(lead_pair >= 0, problem.pair_partner[np.maximum(lead_pair, 0)],
                                -1)
        if verify(problem, lead_partner).ok:
            notes.append("CP-SAT found no solution in time; the repaired flow is returned")
            value = float(problem.pair_score[hint_flow].sum())
            return Outcome("feasible", lead_pair, value, bound, "min_cost_flow+repair", prices,
                           shortfall=hint_short, penalty=penalty, notes=tuple(notes))
        return Outcome("time_limit", np.full(problem.n_leads, -1), 0.0, bound, "cp_sat",
                       prices, notes=tuple(notes))
    pair_flow = mip.values[:problem.n_pairs] > 0.5
    value = float(problem.pair_score[pair_flow].sum())
    bound = min(bound, mip.bound)
    return Outcome("optimal" if mip.status == "optimal" else "feasible",
                   _lead_pair(problem, pair_flow), value, bound, "cp_sat", prices,
                   shortfall=shortfall(pair_flow), penalty=model.penalty, notes=tuple(notes))
