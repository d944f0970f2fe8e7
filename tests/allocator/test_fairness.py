"""Fairness metrics against values computed by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from allocator.fairness import (
    attainable_entitlement,
    entitlement,
    fairness_metrics,
    gini,
    jain,
    lead_capacity,
    partner_totals,
)
from allocator.policy import TierRule
from tests.allocator.fairness_cases import make_problem, random_problem

PAIRS = [
    ("L1", "P1", 0.5), ("L1", "P2", 0.3),
    ("L2", "P1", 0.4),
    ("L3", "P1", 0.2), ("L3", "P2", 0.6), ("L3", "P3", 0.1),
    ("L4", "P3", 0.8),
]  # fmt: skip
PARTNERS = [("P1", "gold", 5), ("P2", "gold", 5), ("P3", "bronze", 5), ("P4", "silver", 5)]
INTENTS = {"L1": "high", "L2": "high", "L3": "low", "L4": "high"}
TIERS = (TierRule("gold", min_share=0.5, max_share=0.6), TierRule("bronze", min_share=0.2))


@pytest.fixture
def problem():
    return make_problem(PAIRS, PARTNERS, INTENTS, tiers=TIERS)


def test_gini_and_jain_by_hand():
    assert gini(np.array([0, 1, 2])) == pytest.approx(4 / 9)
    assert jain(np.array([0, 1, 2])) == pytest.approx(9 / 15)
    assert gini(np.array([3, 3, 3])) == pytest.approx(0.0)
    assert jain(np.array([3, 3, 3])) == pytest.approx(1.0)
    # One partner takes everything: Gini 1 - 1/n, Jain 1/n.
    assert gini(np.array([0, 0, 0, 7])) == pytest.approx(0.75)
    assert jain(np.array([0, 0, 0, 7])) == pytest.approx(0.25)
    assert gini(np.zeros(4)) == 0.0 and jain(np.zeros(4)) == 1.0
    assert math.isnan(gini(np.array([-1.0, 2.0])))


def test_gini_matches_mean_absolute_difference():
    x = np.random.default_rng(3).uniform(0, 5, size=37)
    mad = np.abs(x[:, None] - x[None, :]).sum() / (2 * x.size**2 * x.mean())
    assert gini(x) == pytest.approx(mad)


def test_entitlement_splits_each_lead_equally(problem):
    ent = entitlement(problem)
    np.testing.assert_allclose(ent, [1 / 2 + 1 + 1 / 3, 1 / 2 + 1 / 3, 1 / 3 + 1, 0.0])
    assert ent.sum() == pytest.approx(problem.n_leads)


def test_metrics_by_hand(problem):
    lead_partner = np.array([0, 0, 1, -1])  # L1->P1, L2->P1, L3->P2, L4 held
    m = fairness_metrics(problem, lead_partner)
    assert m.partners_eligible == 3  # P4 has no eligible lead
    assert m.leads_assigned == 3
    assert m.expected_total == pytest.approx(1.5)
    assert m.gini_leads == pytest.approx(4 / 9)
    assert m.jain_leads == pytest.approx(0.6)
    assert m.gini_expected == pytest.approx(0.4)  # [0, 0.6, 0.9]
    assert m.jain_expected == pytest.approx(2.25 / (3 * (0.36 + 0.81)))
    assert m.worst_off_share == 0.0 and m.worst_off_partner == "P3"
    assert m.partners_below_entitlement == 1
    assert m.partners_without_leads == 1
    assert m.high_intent_assigned == 2 and m.top_partners == 1
    assert m.high_intent_top_share == pytest.approx(1.0)
    gold, bronze, silver = m.tiers
    assert (gold.tier, gold.leads, gold.partners) == ("gold", 3, 2)
    assert gold.share == pytest.approx(1.0) and gold.within_policy is False
    # Shares are counts of the round size N = 4: gold 2..floor(2.4) = 2, bronze ceil(0.8) = 1.
    assert (gold.policy_min_leads, gold.policy_max_leads) == (2, 2)
    assert (bronze.tier, bronze.leads, bronze.share) == ("bronze", 0, 0.0)
    assert (bronze.policy_min_leads, bronze.policy_max_leads) == (1, None)
    assert bronze.within_policy is False
    assert silver.tier == "silver" and silver.partners == 0 and silver.within_policy is None


def test_worst_off_share_when_everyone_gets_more_than_entitlement(problem):
    m = fairness_metrics(problem, np.array([1, 0, 1, 2]))  # P1 1, P2 2, P3 1
    # P1: 1 / (11/6); P2: 2 / (5/6); P3: 1 / (4/3)
    assert m.worst_off_partner == "P1"
    assert m.worst_off_share == pytest.approx(6 / 11)
    assert m.high_intent_top_share == pytest.approx(1 / 3)  # L1->P2, L2->P1, L4->P3
    gold, bronze, _ = m.tiers
    assert gold.leads == 3 and gold.within_policy is False  # at most 2 of 4
    assert bronze.leads == 1 and bronze.within_policy is True
    assert gold.expected_share == pytest.approx((0.3 + 0.4 + 0.6) / 2.1)


def test_expected_overrides_score(problem):
    expected = np.full(problem.n_pairs, 0.25)
    m = fairness_metrics(problem, np.array([0, 0, 1, 2]), expected)
    assert m.expected_total == pytest.approx(1.0)
    leads, exp = partner_totals(problem, np.array([0, 0, 1, 2]), expected)
    np.testing.assert_array_equal(leads, [2, 1, 1, 0])
    np.testing.assert_allclose(exp, [0.5, 0.25, 0.25, 0.0])


def test_nothing_assigned(problem):
    m = fairness_metrics(problem, np.full(4, -1))
    assert m.leads_assigned == 0 and m.gini_leads == 0.0 and m.jain_leads == 1.0
    assert math.isnan(m.high_intent_top_share)
    d = m.to_dict()
    assert d["high_intent_top_share"] is None
    json.dumps(d, allow_nan=False)


def test_to_dict_is_json(problem):
    d = fairness_metrics(problem, np.array([0, 0, 1, 2])).to_dict()
    text = json.dumps(d, allow_nan=False)
    assert json.loads(text)["tiers"][0]["tier"] == "gold"


def test_assignment_to_ineligible_partner_is_named(problem):
    with pytest.raises(ValueError, match=r"Lead 'L2' is assigned to partner 'P2'.*not one of"):
        fairness_metrics(problem, np.array([0, 1, 1, 2]))
    with pytest.raises(ValueError, match="partner index 9, but there are only 4"):
        fairness_metrics(problem, np.array([0, 9, 1, 2]))
    with pytest.raises(ValueError, match=r"one partner index per lead \(4\)"):
        fairness_metrics(problem, np.array([0, 0]))
    with pytest.raises(ValueError, match=r"one value per eligible pair \(7\)"):
        fairness_metrics(problem, np.array([0, 0, 1, 2]), np.ones(3))


def test_random_round_invariants():
    p = random_problem(seed=11, n_leads=300, n_partners=40, max_eligible=4)
    rng = np.random.default_rng(0)
    # Assign every lead to a random eligible partner.
    choice = np.full(p.n_leads, -1)
    for pair in rng.permutation(p.n_pairs):
        choice[p.pair_lead[pair]] = p.pair_partner[pair]
    m = fairness_metrics(p, choice)
    assert m.leads_assigned == p.n_leads
    assert sum(t.leads for t in m.tiers) == p.n_leads
    assert sum(t.share for t in m.tiers) == pytest.approx(1.0)
    assert 0.0 <= m.gini_leads < 1.0 and 1 / m.partners_eligible <= m.jain_leads <= 1.0
    assert m.top_partners == 2  # ceil(5% of 40)


def test_worst_off_counts_only_what_a_partner_can_take():
    # P1 has room for one lead: its attainable entitlement is 1, not 11/6.
    partners = [("P1", "gold", 1), ("P2", "gold", 5), ("P3", "bronze", 0), ("P4", "silver", 5)]
    p = make_problem(PAIRS, partners, INTENTS, tiers=TIERS)
    np.testing.assert_allclose(attainable_entitlement(p), [1.0, 5 / 6, 0.0, 0.0])
    np.testing.assert_array_equal(lead_capacity(p), [1, 5, 0, 5])
    m = fairness_metrics(p, np.array([0, -1, 1, -1]))  # P1 1 (full), P2 1, P3 nothing
    # P3 can take nothing, so it is not the worst off; P1 got all it has room for.
    assert m.worst_off_share == pytest.approx(1.0) and m.worst_off_partner == "P1"
    assert m.partners_below_entitlement == 0
    m = fairness_metrics(p, np.array([-1, 0, -1, -1]))  # P2 gets nothing of 5/6
    assert m.worst_off_partner == "P2" and m.worst_off_share == 0.0
    assert m.partners_below_entitlement == 0  # floor(5/6) = 0: a full floor would not lift it
    with_max = make_problem(PAIRS, partners, INTENTS, max_per_partner=0)
    assert math.isnan(fairness_metrics(with_max, np.full(4, -1)).worst_off_share)
