"""The independent checker names every violated rule with its numbers."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from allocator.policy import Quota, TierRule
from allocator.verify import verify
from tests.allocator.core_instances import tiny

SCORES = {(0, 0): 0.9, (0, 1): 0.5, (1, 0): 0.8, (1, 1): 0.1, (2, 1): 0.3}


def test_a_valid_allocation_passes() -> None:
    result = verify(tiny(SCORES, [1, 2]), np.array([1, 0, -1]))
    assert result.ok and result.violations == ()


def test_ineligible_pair_is_reported() -> None:
    result = verify(tiny(SCORES, [3, 3]), np.array([0, 0, 0]))
    assert not result.ok
    assert any("not eligible" in v and "L2" in v for v in result.violations)


def test_capacity_is_checked() -> None:
    result = verify(tiny(SCORES, [1, 2]), np.array([0, 0, 1]))
    assert result.violations == ("cap[partner=P0]: partner received 2 leads, above its "
                                 "capacity of 1",)


def test_capacity_in_effort_units() -> None:
    problem = replace(tiny(SCORES, [2.5, 2]), pair_effort=np.array([1.5, 1, 1.5, 1, 1]))
    bad = verify(problem, np.array([0, 0, -1]))
    assert any("3 effort units, above its capacity of 2.5" in v for v in bad.violations)
    assert verify(problem, np.array([0, 1, 1])).ok


def test_floor_max_share_and_assign_all() -> None:
    problem = replace(tiny(SCORES, [3, 3], floor=[0, 2]), max_per_partner=1, assign_all=True)
    result = verify(problem, np.array([0, 0, -1]))
    text = " | ".join(result.violations)
    assert "floor[partner=P1]: partner received 0 leads, below its floor of 2" in text
    assert "max_share_per_partner[partner=P0]: partner received 2 leads" in text
    assert "assign_all: 1 lead(s) left unassigned (leads L2)" in text
    soft = replace(problem, floor_mode="soft", max_per_partner=None, assign_all=False)
    assert verify(soft, np.array([0, 0, -1])).ok


def test_tier_shares_use_counts_of_the_round_size() -> None:
    base = tiny(SCORES, [2, 2], tiers=["gold", "silver"])
    problem = replace(base, round_size=3, tiers=(TierRule("gold", min_share=0.5, max_share=0.5),))
    # max 0.5 of 3 = floor(1.5) = 1; min = ceil(1.5) = 2: nothing passes, which is the point.
    result = verify(problem, np.array([0, 0, 1]))
    assert any("above its max_share 0.5 of 3 = 1" in v for v in result.violations)
    result = verify(problem, np.array([1, -1, 1]))
    assert any("below its min_share 0.5 of 3 = 2" in v for v in result.violations)


def test_quotas_count_leads_of_the_intent() -> None:
    base = tiny(SCORES, [3, 3], tiers=["gold", "silver"])
    problem = replace(base, quotas=(Quota("gold", "high", max_share=0.34),
                                    Quota("silver", "high", min_share=0.5)))
    result = verify(problem, np.array([0, 0, 1]))
    text = " | ".join(result.violations)
    assert "quota[tier=gold,intent=high]: tier received 2 high-intent leads, above max_share " \
           "0.34 of 3 = 1" in text
    assert "quota[tier=silver,intent=high]: tier received 1 high-intent leads, below min_share" \
           in text


def test_malformed_allocation_is_a_violation_not_a_crash() -> None:
    problem = tiny(SCORES, [3, 3])
    assert not verify(problem, np.array([0, 1])).ok
    result = verify(problem, np.array([0, 7, -1]))
    assert any("point at no partner" in v for v in result.violations)


@pytest.mark.parametrize("lead_partner", [[-1, -1, -1], [1, 0, -1]])
def test_unassigned_is_fine_without_assign_all(lead_partner: list[int]) -> None:
    assert verify(tiny(SCORES, [1, 2]), np.array(lead_partner)).ok
