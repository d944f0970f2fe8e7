"""Quotas: the Lagrangian search, its LP and CP-SAT fallbacks, and their agreement."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.optimize import Bounds, LinearConstraint, milp

from allocator.diagnose import precheck
from allocator.errors import InfeasiblePolicyError
from allocator.flow import network_spec
from allocator.linear import linear_model, solve_lp, solve_mip
from allocator.policy import Quota
from allocator.prices import lp_prices
from allocator.side import solve_with_quotas
from allocator.solve import solve
from allocator.verify import verify
from tests.allocator.core_instances import random_problem, tiny
from tests.allocator.test_solve_properties import reference

# Three high-intent leads, gold P0 and silver P1.
SCORES = {(0, 0): 0.9, (0, 1): 0.5, (1, 0): 0.8, (1, 1): 0.6, (2, 0): 0.7, (2, 1): 0.1}


def _quota_round(*quotas: Quota):
    return replace(tiny(SCORES, [3, 3], tiers=["gold", "silver"]), quotas=quotas)


def test_minimum_quota_pushes_leads_to_a_tier() -> None:
    # Silver must take ceil(0.6 x 3) = 2 of the high-intent leads: the two that lose least.
    alloc = solve(_quota_round(Quota("silver", "high", min_share=0.6)))
    assert alloc.status == "optimal"
    assert alloc.lead_partner.tolist() == [1, 1, 0]
    assert alloc.objective == pytest.approx(1.8)
    rule = next(r for r in alloc.rules if r.kind == "quota_min")
    assert rule.binding and rule.limit == 2 and rule.price > 0


def test_two_quotas_are_solved_together() -> None:
    alloc = solve(_quota_round(Quota("gold", "high", max_share=0.34),
                               Quota("silver", "high", min_share=0.6)))
    assert alloc.verification.ok and alloc.status == "optimal"
    assert alloc.objective == pytest.approx(1.8)


def _binding_quota_rounds(count: int):
    """Feasible random rounds whose unconstrained optimum breaks a quota."""
    found = []
    for seed in range(400):
        problem = random_problem(seed, 12, 4, quotas=True, density=0.6, assign_all=False)
        if precheck(problem) or reference(problem, integral=True) is None:
            continue
        free = solve(replace(problem, quotas=()))
        if not verify(problem, free.lead_partner).ok:
            found.append(problem)
        if len(found) == count:
            return found
    raise AssertionError("too few random rounds with a binding quota")


def test_fallback_to_lp_and_cp_sat_agrees_with_the_milp() -> None:
    methods = set()
    for problem in _binding_quota_rounds(10):
        expected = reference(problem, integral=True)
        # One flow only: the Lagrangian cannot finish, so the LP (and CP-SAT) must.
        outcome = solve_with_quotas(problem, time_limit_s=10, max_flows=1)
        methods.add(outcome.method)
        assert outcome.status == "optimal"
        assert outcome.objective == pytest.approx(expected, rel=1e-6, abs=1e-9)
        assert outcome.penalized_bound >= outcome.objective - 1e-9
        # And the full search agrees.
        full = solve(problem)
        assert full.verification.ok and full.objective == pytest.approx(expected, rel=1e-6)
    assert methods <= {"lp", "cp_sat"} and methods


@pytest.mark.parametrize("seed", range(6))
def test_cp_sat_model_matches_scipy_milp(seed: int) -> None:
    problem = random_problem(100 + seed, 10, 4, quotas=True, density=0.6, assign_all=False)
    expected = reference(problem, integral=True)
    model = linear_model(problem, network_spec(problem), integral=True)
    result = solve_mip(model, problem.n_leads, time_limit_s=10)
    if expected is None:
        assert result.status == "infeasible"
        return
    assert result.status == "optimal"
    assert result.objective == pytest.approx(expected, rel=1e-6, abs=1e-9)
    assert result.bound >= result.objective - 1e-9
    # The same model through scipy's MILP, as a check of the matrix itself.
    res = milp(-model.obj, integrality=np.ones(model.obj.shape[0]),
               bounds=Bounds(model.var_lo, model.var_hi),
               constraints=LinearConstraint(model.A, model.row_lo, model.row_hi))
    assert -res.fun == pytest.approx(expected, rel=1e-6, abs=1e-9)


def test_lp_duals_price_a_binding_cap() -> None:
    problem = tiny({(0, 0): 0.9, (0, 1): 0.5, (1, 0): 0.8, (1, 1): 0.6}, [1, 5])
    model = linear_model(problem, network_spec(problem))
    lp = solve_lp(model, 5)
    assert lp.status == "optimal" and lp.objective == pytest.approx(1.5)
    prices = lp_prices(problem, model, lp.duals)
    # Any LP dual of the cap lies between the right (0.2) and left (0.4) marginal values.
    assert 0.2 - 1e-9 <= prices.cap[0] <= 0.4 + 1e-9
    assert prices.cap[1] == pytest.approx(0.0)


def test_a_fractional_lp_goes_to_cp_sat() -> None:
    # One 8-cycle of pairs: the two perfect matchings give gold 2 or 0 high-intent leads,
    # so with "at most 1" the LP takes half of each (3.2) and the integer optimum is lower.
    m1 = {(0, 0): 1.0, (1, 1): 1.0, (2, 2): 1.0, (3, 3): 1.0}
    m2 = {(0, 1): 0.6, (1, 2): 0.6, (2, 3): 0.6, (3, 0): 0.6}
    base = tiny({**m1, **m2}, [1, 1, 1, 1], tiers=["gold", "silver", "gold", "silver"])
    problem = replace(base, lead_intent=np.array(["high", "low", "high", "low"], dtype=object),
                      quotas=(Quota("gold", "high", max_share=0.5),))
    lp = solve_lp(linear_model(problem, network_spec(problem)), 5)
    assert lp.objective == pytest.approx(3.2)
    alloc = solve(problem)
    expected = reference(problem, integral=True)
    assert alloc.method == "cp_sat" and alloc.status == "optimal"
    assert alloc.objective == pytest.approx(expected) and expected < 3.2 - 1e-6
    assert alloc.verification.ok
    assert any("CP-SAT" in note for note in alloc.notes)
    # Every lead placed and exactly one gold high-intent lead: the LP has an allocation
    # (half of each matching), no integer one does.
    exact = replace(problem, assign_all=True,
                    quotas=(Quota("gold", "high", max_share=0.5, min_share=0.5),))
    with pytest.raises(InfeasiblePolicyError) as info:
        solve(exact)
    assert "quota[tier=gold,intent=high]" in info.value.rules
