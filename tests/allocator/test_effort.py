"""Effort-weighted capacity: brute force on small rounds, bound and gap on larger ones."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocator.effort import repair, solve_effort
from allocator.errors import InfeasiblePolicyError
from allocator.problem import AllocationProblem
from allocator.solve import solve
from allocator.verify import verify
from tests.allocator.core_instances import random_problem, tiny


def brute_force(problem: AllocationProblem) -> float | None:
    """Best objective over every assignment the checker accepts (None: none is valid)."""
    value = {(int(i), int(j)): s for i, j, s in
             zip(problem.pair_lead, problem.pair_partner, problem.pair_score, strict=True)}
    options = [[-1, *sorted(problem.pair_partner[problem.pair_lead == i].tolist())]
               for i in range(problem.n_leads)]
    best = None
    for combo in itertools.product(*options):
        if verify(problem, np.array(combo)).ok:
            total = sum(value[(i, j)] for i, j in enumerate(combo) if j >= 0)
            best = total if best is None else max(best, total)
    return best


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 6), m=st.integers(1, 3),
       quotas=st.booleans())
def test_small_effort_rounds_match_brute_force(seed: int, n: int, m: int, quotas: bool) -> None:
    problem = random_problem(seed, n, m, effort=True, quotas=quotas)
    expected = brute_force(problem)
    if expected is None:
        with pytest.raises(InfeasiblePolicyError):
            solve(problem, time_limit_s=10)
        return
    alloc = solve(problem, time_limit_s=10)
    assert alloc.verification.ok, alloc.verification.violations
    assert alloc.status == "optimal"
    assert alloc.objective == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_knapsack_by_hand() -> None:
    # P0 holds 3 effort units: L0 (2 units, 0.9) or L1 + L2 (1 unit each, 0.5 + 0.5).
    base = tiny({(0, 0): 0.9, (1, 0): 0.5, (2, 0): 0.5}, [3.0])
    problem = replace(base, pair_effort=np.array([2.0, 1.0, 1.0]))
    alloc = solve(problem)
    assert alloc.lead_partner.tolist() == [0, 0, -1] or alloc.lead_partner.tolist() == [0, -1, 0]
    assert alloc.objective == pytest.approx(1.4)
    cap = next(r for r in alloc.rules if r.rule == "cap[partner=P0]")
    assert cap.binding and cap.used == 3.0 and "effort units" in cap.description
    assert cap.price_source == "LP relaxation dual (GLOP)"
    # Four units: everything fits.
    roomy = solve(replace(problem, capacity_units=np.array([4.0])))
    assert roomy.objective == pytest.approx(1.9) and roomy.method == "min_cost_flow"


def test_larger_round_reports_bound_and_gap() -> None:
    problem = random_problem(5, 250, 25, effort=True, density=0.2, assign_all=False)
    problem = replace(problem, floor=np.zeros(25, dtype=np.int64), tiers=(),
                      capacity_units=problem.capacity_units * 3)
    alloc = solve(problem, time_limit_s=3)
    assert alloc.verification.ok
    assert alloc.status in ("optimal", "feasible")
    assert alloc.bound >= alloc.objective - 1e-9
    assert alloc.gap == pytest.approx((alloc.bound - alloc.objective) / abs(alloc.bound))
    assert alloc.method in ("cp_sat", "min_cost_flow")


def test_repair_keeps_the_best_leads_that_fit() -> None:
    base = tiny({(0, 0): 0.9, (1, 0): 0.5, (2, 0): 0.4}, [2.0])
    problem = replace(base, pair_effort=np.array([1.0, 1.0, 1.0]))
    kept = repair(problem, np.array([True, True, True]))
    assert kept.tolist() == [True, True, False]


def test_relaxation_bound_holds_when_cp_sat_has_no_time() -> None:
    problem = random_problem(9, 40, 6, effort=True, density=0.5, assign_all=False)
    problem = replace(problem, floor=np.zeros(6, dtype=np.int64), tiers=())
    outcome = solve_effort(problem, time_limit_s=0.05)
    assert outcome.status in ("optimal", "feasible", "time_limit")
    if outcome.status != "time_limit":
        assert outcome.penalized_bound >= outcome.objective - 1e-9
