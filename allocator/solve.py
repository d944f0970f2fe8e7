"""Solve one round: dispatch to the right method, check the status in one place, verify.

* Network rules only (caps, floors, tier shares, max share, assign_all): the
  min-cost flow (:mod:`allocator.flow`), exact, prices from its residual graph.
* Quotas (tier × intent): Lagrangian relaxation around the flow, then LP, then
  CP-SAT when the gap demands it (:mod:`allocator.side`).
* Effort-weighted capacity: CP-SAT under a time limit, with a proven bound
  (:mod:`allocator.effort`).

Hard policies are checked before solving (:func:`allocator.diagnose.precheck`)
and, when a solver finds no allocation, the rules in conflict are found by
relaxing rule families (:func:`allocator.diagnose.diagnose`); both raise
:class:`~allocator.errors.InfeasiblePolicyError`.  Every result is checked by
the independent :func:`allocator.verify.verify` and carries its verdict.
"""

from __future__ import annotations

import time

import numpy as np

from allocator.diagnose import diagnose, precheck
from allocator.flow import network_spec, rounding_slack, solve_network
from allocator.prices import Outcome, network_prices, rule_prices
from allocator.problem import Allocation, AllocationProblem, Status
from allocator.verify import verify

OPTIMAL_GAP = 1e-6


def _check_shapes(problem: AllocationProblem) -> None:
    n, m, p = problem.n_leads, problem.n_partners, problem.n_pairs
    wrong = []
    for name, arr, size in (("lead_intent", problem.lead_intent, n),
                            ("partner_tier", problem.partner_tier, m),
                            ("capacity_units", problem.capacity_units, m),
                            ("floor", problem.floor, m), ("pair_partner", problem.pair_partner, p),
                            ("pair_score", problem.pair_score, p)):
        if np.shape(arr) != (size,):
            wrong.append(f"'{name}' must have shape ({size},); got {np.shape(arr)}")
    if problem.pair_effort is not None and np.shape(problem.pair_effort) != (p,):
        wrong.append(f"'pair_effort' must have shape ({p},); got {np.shape(problem.pair_effort)}")
    if wrong:
        raise ValueError("The allocation problem is inconsistent: " + "; ".join(wrong) + ".")
    if p and (problem.pair_lead.min() < 0 or problem.pair_lead.max() >= n
              or problem.pair_partner.min() < 0 or problem.pair_partner.max() >= m):
        raise ValueError(f"Pair indices must point at the problem's {n} leads and {m} partners.")
    if not np.all(np.isfinite(problem.pair_score)):
        bad = int(np.count_nonzero(~np.isfinite(problem.pair_score)))
        raise ValueError(f"Every 'pair_score' must be finite. Got {bad} that are not.")
    if problem.pair_effort is not None and not np.all(problem.pair_effort > 0):
        raise ValueError("Every 'pair_effort' must be positive.")


def _network_outcome(problem: AllocationProblem) -> Outcome:
    sol = solve_network(problem)
    if sol.status != "optimal":
        return Outcome("infeasible", sol.lead_pair, 0.0, np.inf, "min_cost_flow",
                       lambda: network_prices(problem, sol))
    penalty = sol.scale.penalty_value
    shortfall = sol.shortfall
    short_total = 0 if shortfall is None else int(shortfall.sum())
    bound = sol.value - penalty * short_total + rounding_slack(problem, sol.scale)
    return Outcome("optimal", sol.lead_pair, sol.value, bound, "min_cost_flow",
                   lambda: network_prices(problem, sol), shortfall=shortfall, penalty=penalty)


def solve(problem: AllocationProblem, time_limit_s: float = 30.0) -> Allocation:
    """Solve one allocation round.

    Parameters
    ----------
    problem : AllocationProblem
    time_limit_s : float
        Wall-clock budget for the methods that can run long (LP, CP-SAT); the
        min-cost flow always runs to optimality.

    Returns
    -------
    Allocation
        With status, proven bound and gap, rule prices, the verifier's verdict
        and timings (``build``, ``solve``, ``prices``, ``verify``).

    Raises
    ------
    InfeasiblePolicyError
        When the hard rules admit no allocation, naming the rules in conflict.
    ValueError
        When the problem's arrays are inconsistent.
    """
    if time_limit_s <= 0:
        raise ValueError(f"'time_limit_s' must be positive. Got {time_limit_s!r} instead.")
    _check_shapes(problem)
    timings = {"build": float(problem.build_time_s)}
    started = time.perf_counter()
    if precheck(problem, network_spec(problem), hall=False):
        raise diagnose(problem, time_limit_s)
    if problem.pair_effort is not None:
        from allocator.effort import solve_effort

        outcome = solve_effort(problem, time_limit_s)
    elif problem.quotas:
        from allocator.side import solve_with_quotas

        outcome = solve_with_quotas(problem, time_limit_s)
    else:
        outcome = _network_outcome(problem)
    timings["solve"] = time.perf_counter() - started

    if outcome.status == "infeasible":
        raise diagnose(problem, time_limit_s)
    lead_pair = np.asarray(outcome.lead_pair, dtype=np.int64)
    lead_partner = np.where(lead_pair >= 0, problem.pair_partner[np.maximum(lead_pair, 0)]
                            if problem.n_pairs else -1, -1).astype(np.int64)
    t0 = time.perf_counter()
    prices = outcome.prices()
    rules = rule_prices(problem, lead_partner, prices)
    timings["prices"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    verdict = verify(problem, lead_partner)
    timings["verify"] = time.perf_counter() - t0

    short_total = 0 if outcome.shortfall is None else int(outcome.shortfall.sum())
    bound = outcome.penalized_bound + outcome.penalty * short_total
    objective = float(outcome.objective)
    status: Status
    if outcome.status == "time_limit":
        status = "time_limit"
        gap = np.inf
    else:
        gap = max(0.0, (bound - objective) / max(abs(bound), 1e-9))
        if gap < 1e-12:  # float noise of the bound's arithmetic, not a gap
            gap, bound = 0.0, max(bound, objective)
        status = "optimal" if outcome.status == "optimal" or gap <= OPTIMAL_GAP else "feasible"
    notes = list(problem.notes) + list(outcome.notes)
    if outcome.shortfall is not None and problem.floor_mode == "soft":
        notes.append(f"soft floors: {short_total} floor lead(s) missed at "
                     f"{outcome.penalty:.4g} per lead; bound and gap refer to score minus "
                     "penalties")
    if not verdict.ok:
        notes.append("the independent check found violations: " + "; ".join(verdict.violations))
    return Allocation(
        status=status, lead_partner=lead_partner, lead_pair=lead_pair, objective=objective,
        bound=float(bound), gap=float(gap), method=outcome.method,
        partner_price=prices.partner_price(), rules=rules, verification=verdict,
        timings_s=timings,
        floor_shortfall=outcome.shortfall if problem.floor_mode == "soft" else None,
        price_source=prices.source, notes=tuple(notes))
