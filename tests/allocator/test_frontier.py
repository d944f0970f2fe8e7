"""The fairness-versus-yield frontier: hand-checked points and properties on random rounds."""

from __future__ import annotations

import math
from dataclasses import replace
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocator.fairness import entitlement
from allocator.frontier import CURRENT_LABEL, alpha_floor, compute_frontier
from allocator.policy import Quota, TierRule
from allocator.problem import Allocation
from allocator.solve import solve
from allocator.verify import verify
from tests.allocator.fairness_cases import make_problem, random_problem

# Two partners and four leads both may take: P1 converts 0.9, P2 0.1, room for all.
TWO = make_problem(
    [(f"L{i}", "P1", 0.9) for i in range(4)] + [(f"L{i}", "P2", 0.1) for i in range(4)],
    [("P1", "gold", 4), ("P2", "silver", 4)],
    floor=[1, 1],
)


def test_two_partner_frontier_by_hand():
    f = compute_frontier(TWO, alphas=[0.0, 0.5, 1.0])
    sweep = [p for p in f.points if not p.is_current]
    # Entitlement 2 each: floors 0, 1, 2 for P2; every lead P2 must take loses 0.8.
    assert [p.floor_total for p in sweep] == [0, 2, 4]
    assert [p.objective for p in sweep] == pytest.approx([3.6, 2.8, 2.0])
    assert [p.yield_lost for p in sweep] == pytest.approx([0.0, 0.8, 1.6])
    assert [p.yield_lost_pct for p in sweep] == pytest.approx([0.0, 100 * 0.8 / 3.6,
                                                               100 * 1.6 / 3.6])
    assert [p.fairness.worst_off_share for p in sweep if p.fairness] == pytest.approx(
        [0.0, 0.5, 1.0])
    assert f.reference_objective == pytest.approx(3.6)
    # The policy's own floor (1 each) is the current point, solved once more.
    current = f.current
    assert current is not None and current.label == CURRENT_LABEL and math.isnan(current.alpha)
    assert current.objective == pytest.approx(2.8) and current.floor_total == 2
    assert all(p.verified for p in f.points)


def test_current_alpha_marks_a_sweep_point():
    f = compute_frontier(TWO, alphas=[0.0, 1.0], current_alpha=0.5)
    assert [p.alpha for p in f.points] == [0.0, 0.5, 1.0]
    assert [p.is_current for p in f.points] == [False, True, False]


def test_infeasible_points_are_kept_with_their_reason():
    # Tier gold may take at most 50% of the round: P1's floor at alpha=1 (3 leads of 4)
    # breaks it, so the strongest points have no allocation.
    p = make_problem(
        [(f"L{i}", "P1", 0.9) for i in range(4)] + [("L0", "P2", 0.1), ("L1", "P2", 0.1)],
        [("P1", "gold", 4), ("P2", "silver", 4)],
        tiers=(TierRule("gold", max_share=0.5),),
    )
    f = compute_frontier(p, alphas=np.linspace(0, 1, 5), include_policy=False)
    assert len(f.points) == 5
    statuses = [pt.status for pt in f.points]
    assert statuses[0] == "optimal" and statuses[-1] == "infeasible"
    last = f.points[-1]
    assert last.lead_partner is None and math.isnan(last.objective) and last.fairness is None
    assert "gold" in last.message or "floor" in last.message
    frame = f.to_frame()
    assert list(frame["status"]) == statuses
    assert frame["objective"].isna().tolist() == [s == "infeasible" for s in statuses]


def test_alpha_floor_is_rounded_down_and_capped():
    p = make_problem([("L0", "P1", 0.5), ("L0", "P2", 0.5), ("L1", "P1", 0.5),
                      ("L2", "P1", 0.5), ("L3", "P1", 0.5)],
                     [("P1", "gold", 2), ("P2", "gold", 9)])
    np.testing.assert_allclose(entitlement(p), [3.5, 0.5])
    np.testing.assert_array_equal(alpha_floor(p, 1.0), [2, 0])  # capacity 2; 0.5 rounds down
    np.testing.assert_array_equal(alpha_floor(p, 0.3), [1, 0])
    with pytest.raises(ValueError, match=r"'alpha' must be between 0 and 1\. Got 1\.5"):
        alpha_floor(p, 1.5)
    with pytest.raises(ValueError, match="at least one fairness strength"):
        compute_frontier(p, alphas=[])


def test_direct_flow_agrees_with_the_full_solver():
    p = random_problem(5, 60, 8, 3, tiers=(TierRule("gold", 0.2, 0.6),))
    fast = compute_frontier(p, include_policy=False)
    full = compute_frontier(p, include_policy=False, solve_fn=solve)
    assert fast.solver != full.solver
    for a, b in zip(fast.points, full.points, strict=True):
        assert a.status == b.status
        if a.status == "optimal":
            assert a.objective == pytest.approx(b.objective, abs=1e-9)


def test_quota_rounds_go_through_the_solver():
    quota = (Quota("gold", "high", max_share=0.4),)
    p = random_problem(9, 40, 6, 3, quotas=quota)
    f = compute_frontier(p, alphas=[0.0, 0.5, 1.0], time_limit_s=10)
    assert f.solver == "allocator.solve per point"
    for pt in f.points:
        if pt.lead_partner is not None:
            assert verify(replace(p, floor=alpha_floor(p, pt.alpha) if not pt.is_current
                                  else p.floor, floor_mode="hard"), pt.lead_partner).ok


@st.composite
def rounds(draw):
    seed = draw(st.integers(0, 10_000))
    n_leads = draw(st.integers(1, 40))
    n_partners = draw(st.integers(1, 7))
    tiers = draw(st.sampled_from([(), (TierRule("gold", 0.1, 0.7),),
                                  (TierRule("silver", max_share=0.5),)]))
    p = random_problem(seed, n_leads, n_partners, draw(st.integers(1, 4)), tiers=tiers)
    mpp = draw(st.one_of(st.none(), st.integers(1, 20)))
    return replace(p, max_per_partner=mpp, assign_all=draw(st.booleans()))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rounds())
def test_frontier_properties(problem):
    f = compute_frontier(problem, alphas=np.linspace(0, 1, 6), include_policy=False)
    pts = list(f.points)
    assert [p.alpha for p in pts] == pytest.approx(list(np.linspace(0, 1, 6)))
    # The guarantee only grows; once infeasible, stronger floors stay infeasible.
    floors = [alpha_floor(problem, p.alpha) for p in pts]
    for lo, hi in pairwise(floors):
        assert (hi >= lo).all()
    assert [p.floor_total for p in pts] == sorted(p.floor_total for p in pts)
    feasible = [p.lead_partner is not None for p in pts]
    assert feasible == sorted(feasible, reverse=True)
    # Yield never rises as fairness rises, and the price is measured against alpha = 0.
    objectives = [p.objective for p in pts if p.lead_partner is not None]
    for a, b in pairwise(objectives):
        assert b <= a + 1e-9
    for p, fl in zip(pts, floors, strict=True):
        if p.lead_partner is None:
            assert p.status == "infeasible" and p.message
            continue
        assert p.status == "optimal" and p.verified is True and p.violations == ()
        # Every partner receives at least its floor (checked here, not only by verify).
        got = np.bincount(p.lead_partner[p.lead_partner >= 0], minlength=problem.n_partners)
        assert (got >= fl).all()
        assert p.yield_lost == pytest.approx(f.reference_objective - p.objective)
        assert p.yield_lost >= -1e-9


def test_points_short_of_optimal_borrow_from_stronger_points():
    """A point the solver leaves short takes the assignment of a stronger alpha (nested rules)."""

    def lazy_at_zero(problem, time_limit_s):
        if problem.floor.sum() == 0:  # alpha = 0: pretend the time ran out with nothing placed
            nothing = np.full(problem.n_leads, -1, dtype=np.int64)
            return Allocation(status="feasible", lead_partner=nothing, lead_pair=nothing,
                              objective=0.0, bound=10.0, gap=1.0, method="test",
                              partner_price=np.zeros(problem.n_partners))
        return solve(problem, time_limit_s)

    f = compute_frontier(TWO, alphas=[0.0, 0.5, 1.0], include_policy=False,
                         solve_fn=lazy_at_zero)
    zero, half, _ = f.points
    assert zero.status == "feasible" and zero.objective == pytest.approx(2.8)
    assert "assignment of alpha=0.5" in zero.message and zero.verified
    np.testing.assert_array_equal(zero.lead_partner, half.lead_partner)
    # alpha = 0 proved nothing better than 10; the stronger points keep their own bounds.
    assert zero.bound == 10.0 and half.bound == pytest.approx(2.8)
    assert [p.objective for p in f.points] == pytest.approx([2.8, 2.8, 2.0])
