"""build_problem: round size, shares as counts, floors, effort, revenue values, bad input."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from allocator.build import build_problem, max_count, min_count, pair_values, quota_groups
from allocator.errors import InputError
from allocator.policy import Policy, Quota, TierRule


def _frames():
    partners = pd.DataFrame({
        "partner_id": ["P0", "P1", "P2", "P3"],
        "tier": ["gold", "silver", "silver", "bronze"],
        "capacity": [2, 5, 0, 3],
        "active": [True, True, True, False],
    })
    leads = pd.DataFrame({
        "lead_id": ["L0", "L1", "L2", "L3", "L4"],
        "intent": ["high", "high", None, "low", "high"],
        "deal_size": [1000.0, np.nan, 500.0, 200.0, 100.0],
        "effort": [1.0, 1.0, 1.0, 1.0, 1.0],
    })
    # L3 has no pair (held back): it is not in the round.
    lead_index = [0, 0, 1, 1, 2, 4, 4]
    partner_index = [0, 1, 0, 2, 0, 0, 1]
    pairs = pd.DataFrame({
        "lead_id": leads["lead_id"].to_numpy()[lead_index],
        "partner_id": partners["partner_id"].to_numpy()[partner_index],
        "lead_index": lead_index, "partner_index": partner_index,
    })
    scores = np.array([0.5, 0.4, 0.3, 0.2, 0.6, 0.1, 0.7])
    return pairs, scores, leads, partners


def test_round_size_is_the_max_flow_and_shares_are_counts_of_it() -> None:
    pairs, scores, leads, partners = _frames()
    policy = Policy(max_share_per_partner=0.5, partner_floor=2,
                    tiers=(TierRule("gold", min_share=0.3, max_share=0.6),),
                    quotas=(Quota("gold", "high", max_share=0.5),))
    problem = build_problem(pairs, scores, leads, partners, policy)
    # Leads L0, L1, L2, L4: P0 takes 2 and P1 takes the rest (P2 has capacity 0) -> 4.
    assert problem.round_size == 4
    assert problem.lead_ids.tolist() == ["L0", "L1", "L2", "L4"]
    assert problem.lead_row.tolist() == [0, 1, 2, 4]
    assert problem.max_per_partner == 2  # floor(0.5 x 4)
    # Floors: P0 min(2, cap 2, 4 eligible, 2); P1 2; P2 capacity 0; P3 inactive.
    assert problem.floor.tolist() == [2, 2, 0, 0]
    assert problem.lead_intent.tolist() == ["high", "high", "", "high"]
    assert problem.pair_effort is None
    _, lo, hi, group = quota_groups(problem)
    assert lo.tolist() == [0] and hi.tolist() == [1]  # floor(0.5 x 3 high-intent leads)
    assert group.tolist() == [0, -1, 0, -1, -1, 0, -1]


def test_share_counts_round_toward_the_rule() -> None:
    assert max_count(0.6, 5) == 3 and min_count(0.6, 5) == 3
    assert max_count(0.3, 5) == 1 and min_count(0.3, 5) == 2
    assert max_count(0.1, 30) == 3 and min_count(0.1, 30) == 3  # no float drift


def test_effort_from_leads_or_pairs() -> None:
    pairs, scores, leads, partners = _frames()
    leads = leads.assign(effort=[2.0, 1.0, 1.0, 1.0, 0.5])
    problem = build_problem(pairs, scores, leads, partners, Policy(partner_floor=1))
    assert problem.pair_effort.tolist() == [2.0, 2.0, 1.0, 1.0, 1.0, 0.5, 0.5]
    assert problem.round_size == 4  # with effort: the leads in the round
    explicit = build_problem(pairs, scores, leads, partners, Policy(), effort=np.full(7, 3.0))
    assert explicit.pair_effort.tolist() == [3.0] * 7
    assert any("effort units" in n for n in explicit.notes)


def test_revenue_values_count_missing_deal_size_as_zero() -> None:
    pairs, scores, leads, partners = _frames()
    policy = Policy(objective_value="revenue")
    values = pair_values(scores, pairs, leads, policy)
    assert values.tolist() == pytest.approx([500.0, 400.0, 0.0, 0.0, 300.0, 10.0, 70.0])
    problem = build_problem(pairs, values, leads, partners, policy)
    assert problem.objective == "revenue"
    assert any("1 lead in the round has no deal_size" in n for n in problem.notes)
    assert pair_values(scores, pairs, leads, Policy()) is not None
    with pytest.raises(ValueError, match="needs a 'deal_size' column"):
        pair_values(scores, pairs, leads.drop(columns="deal_size"), policy)


def test_an_eligibility_object_is_accepted() -> None:
    pairs, scores, leads, partners = _frames()
    problem = build_problem(SimpleNamespace(pairs=pairs), scores, leads, partners, Policy())
    assert problem.n_pairs == 7


def test_bad_input_reports_every_problem() -> None:
    pairs, scores, leads, partners = _frames()
    scores = scores.copy()
    scores[[1, 3]] = [np.nan, np.inf]
    partners = partners.assign(capacity=[2, -1, 0, 3])
    with pytest.raises(InputError, match="3 problems") as info:
        build_problem(pairs, scores, leads, partners, Policy())
    text = str(info.value)
    assert "pairs, row 2, column 'score': value nan: a pair's score must be a finite number" in text
    assert "row 4, column 'score'" in text
    assert "partners, row 2, column 'capacity': value -1.0" in text
    with pytest.raises(InputError, match="effort must be a positive finite number"):
        build_problem(pairs, np.ones(7), leads, _frames()[3], Policy(), effort=np.r_[0.0, [1] * 6])
    with pytest.raises(ValueError, match="one value per pair"):
        build_problem(pairs, np.ones(3), leads, _frames()[3], Policy())
