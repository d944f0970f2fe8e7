"""Infeasible hard policies are explained in words and numbers, with stable rule names."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from allocator.diagnose import diagnose, find_conflicts, precheck
from allocator.errors import InfeasiblePolicyError
from allocator.policy import Quota, TierRule
from allocator.solve import solve
from tests.allocator.core_instances import tiny

# Three leads; P0, P1 (bronze) and P2 (gold).
SCORES = {(0, 0): 0.5, (0, 2): 0.9, (1, 1): 0.4, (1, 2): 0.8, (2, 2): 0.7}
TIERS = ["bronze", "bronze", "gold"]


def test_floors_against_the_leads_eligible_for_a_tier() -> None:
    problem = tiny(SCORES, [5, 5, 5], tiers=TIERS, floor=[2, 1, 0])
    with pytest.raises(InfeasiblePolicyError,
                       match="floors need 3 leads but only 2 qualified leads are eligible for "
                             "tier bronze") as info:
        solve(problem)
    assert "floor[partner=P0]" in info.value.rules and "floor[partner=P1]" in info.value.rules


def test_a_floor_above_what_the_partner_can_take() -> None:
    problem = tiny(SCORES, [1, 5, 5], tiers=TIERS, floor=[2, 0, 0])
    with pytest.raises(InfeasiblePolicyError,
                       match=r"floor\[partner=P0\] asks for 2 leads but P0 can take at most 1 "
                             r"\(capacity 1, eligible for 1 lead\)"):
        solve(problem)


def test_tier_minimum_against_eligible_leads() -> None:
    problem = replace(tiny(SCORES, [5, 5, 5], tiers=TIERS),
                      tiers=(TierRule("bronze", min_share=0.9),))
    with pytest.raises(InfeasiblePolicyError,
                       match=r"tier_share\[tier=bronze\] asks for at least 3 leads in tier bronze "
                             "but only 2 leads are eligible for it") as info:
        solve(problem)
    assert info.value.rules == ["tier_share[tier=bronze]"]


def test_assign_all_against_capacity() -> None:
    problem = tiny(SCORES, [0, 0, 2], tiers=TIERS, assign_all=True)
    err = diagnose(problem)
    assert any("assign_all needs all 3 leads placed but partners can take at most 2" in c
               for c in err.conflicts)
    assert "assign_all" in err.rules


def test_hall_check_names_the_partners_competing_for_the_same_leads() -> None:
    # P0 and P1 each need a lead, but both are eligible only for L0.
    problem = tiny({(0, 0): 0.5, (0, 1): 0.5, (1, 2): 0.5}, [1, 1, 1],
                   tiers=["gold", "silver", "bronze"], floor=[1, 1, 0])
    assert precheck(problem, hall=False) == []
    conflicts = precheck(problem)
    assert [c.text for c in conflicts] == [
        "floors of 2 partners (P0, P1) need 2 leads but only 1 distinct lead is eligible "
        "for any of them"]
    with pytest.raises(InfeasiblePolicyError, match="floors of 2 partners"):
        solve(problem)


def test_conflicting_families_are_found_by_relaxing_them() -> None:
    # Gold's floor needs one of the two leads; bronze's minimum share asks for both.
    problem = replace(tiny({(0, 0): 0.5, (0, 1): 0.9, (1, 0): 0.5, (1, 1): 0.9}, [2, 2],
                           tiers=["bronze", "gold"], floor=[0, 1]),
                      tiers=(TierRule("bronze", min_share=1.0),))
    assert precheck(problem) == []
    conflicts = find_conflicts(problem)
    texts = " | ".join(c.text for c in conflicts)
    assert "partner floors (1 lead in total over 1 partner)" in texts
    assert "tier minimum shares (in leads: bronze 2)" in texts
    with pytest.raises(InfeasiblePolicyError) as info:
        solve(problem)
    assert set(info.value.rules) == {"floor[partner=P1]", "tier_share[tier=bronze]"}
    assert "relaxing any one of them makes it feasible" in str(info.value)


def test_quota_minimum_beyond_eligible_leads() -> None:
    problem = replace(tiny(SCORES, [5, 5, 5], tiers=TIERS),
                      quotas=(Quota("bronze", "high", min_share=0.9),))
    with pytest.raises(InfeasiblePolicyError,
                       match=r"quota\[tier=bronze,intent=high\] asks for 3 high-intent leads"):
        solve(problem)


def test_quota_conflict_found_after_the_solver() -> None:
    # Gold may take no high-intent lead, but L2 is eligible only for gold and must be placed.
    problem = replace(tiny(SCORES, [5, 5, 5], tiers=TIERS, assign_all=True),
                      quotas=(Quota("gold", "high", max_share=0.0),))
    with pytest.raises(InfeasiblePolicyError) as info:
        solve(problem)
    assert "assign_all" in info.value.rules or \
        "quota[tier=gold,intent=high]" in info.value.rules
    assert all(c for c in info.value.conflicts)


def test_feasible_rounds_pass_the_checks() -> None:
    problem = tiny(SCORES, [5, 5, 5], tiers=TIERS, floor=[1, 1, 1])
    assert precheck(problem) == []
    assert solve(problem).verification.ok


def test_soft_floors_are_not_a_conflict() -> None:
    problem = tiny(SCORES, [5, 5, 5], tiers=TIERS, floor=[2, 1, 0], floor_mode="soft")
    alloc = solve(problem)
    assert alloc.floor_shortfall is not None and int(alloc.floor_shortfall.sum()) == 1
    assert np.all(alloc.lead_partner >= 0)
