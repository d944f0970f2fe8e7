"""Pricing rules by re-solving with the rule relaxed one step."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocator.errors import InfeasiblePolicyError
from allocator.policy import Quota, TierRule
from allocator.problem import RulePrice
from allocator.rule_prices import RESOLVE_SOURCE, price_rules_by_resolve, relax_rule
from allocator.solve import solve
from tests.allocator.fairness_cases import make_problem, random_problem

# P1 (room for 2) is the better partner for every lead; P2 must take one (floor 1).
PAIRS = [("L1", "P1", 0.9), ("L1", "P2", 0.5), ("L2", "P1", 0.8), ("L2", "P2", 0.6),
         ("L3", "P1", 0.7), ("L3", "P2", 0.2), ("L4", "P1", 0.6)]


def test_cap_price_by_hand():
    p = make_problem(PAIRS, [("P1", "gold", 2), ("P2", "silver", 5)])
    alloc = solve(p)
    # Best: L3, L4 -> P1 (1.3), L1, L2 -> P2 (1.1): 2.4.
    assert alloc.objective == pytest.approx(2.4)
    (cap,) = price_rules_by_resolve(p, alloc, rules=["cap[partner=P1]"])
    # One more seat at P1: L1, L3, L4 -> P1 (2.2), L2 -> P2 (0.6): 2.8.
    assert cap.price == pytest.approx(0.4) and cap.price_source == RESOLVE_SOURCE
    assert cap.rule == "cap[partner=P1]" and cap.binding


def test_floor_price_by_hand():
    p = make_problem(PAIRS[:6], [("P1", "gold", 3), ("P2", "silver", 5)], floor=[0, 2])
    alloc = solve(p)
    # P2 must take two: L2 (0.6) and L1 (0.5) cost least; L3 -> P1 (0.7): 1.8.
    assert alloc.objective == pytest.approx(1.8)
    (floor,) = price_rules_by_resolve(p, alloc, rules=["floor[partner=P2]"])
    # Floor 1: L2 -> P2, L1 and L3 -> P1: 2.2, a gain of 0.4.
    assert floor.price == pytest.approx(0.4)


def test_default_prices_the_binding_rules():
    p = random_problem(2, 30, 5, 3, tiers=(TierRule("gold", 0.3, 0.5),))
    alloc = solve(p)
    priced = price_rules_by_resolve(p, alloc)
    assert [r.rule for r in priced] == [r.rule for r in alloc.rules if r.binding]
    assert all(r.price_source == RESOLVE_SOURCE for r in priced)


def test_relaxed_problems_move_one_step():
    p = make_problem(PAIRS, [("P1", "gold", 2), ("P2", "silver", 5)], floor=[0, 1],
                     tiers=(TierRule("gold", 0.25, 0.5),), max_per_partner=3,
                     intents={"L1": "high", "L2": "high"},
                     quotas=(Quota("gold", "high", max_share=0.5, min_share=0.5),))

    def rule(name: str, kind: str) -> RulePrice:
        return RulePrice(name, kind, True, 0.0, 0.0, 0.0, "", "")

    def most(share: float | None, n: int) -> int:
        assert share is not None
        return math.floor(share * n + 1e-9)

    def least(share: float | None, n: int) -> int:
        assert share is not None
        return math.ceil(share * n - 1e-9)

    q, _ = relax_rule(p, rule("cap[partner=P1]", "cap"))
    assert q.capacity_units.tolist() == [3.0, 5.0]
    q, _ = relax_rule(p, rule("floor[partner=P2]", "floor"))
    assert q.floor.tolist() == [0, 0]
    q, _ = relax_rule(p, rule("max_share_per_partner[partner=P1]", "max_share_per_partner"))
    assert q.max_per_partner == 4 and q.capacity_units.tolist() == [2.0, 3.0]
    # Round size 4: gold may take 1..2 leads; one step is 0..3.
    q, _ = relax_rule(p, rule("tier_share[tier=gold]", "tier_max_share"))
    assert most(q.tiers[0].max_share, 4) == 3
    q, _ = relax_rule(p, rule("tier_share[tier=gold]", "tier_min_share"))
    assert least(q.tiers[0].min_share, 4) == 0
    # Two high-intent leads: the quota allows exactly 1; one step is 2 at most, 0 at least.
    q, _ = relax_rule(p, rule("quota[tier=gold,intent=high]", "quota_max"))
    assert most(q.quotas[0].max_share, 2) == 2
    q, _ = relax_rule(p, rule("quota[tier=gold,intent=high]", "quota_min"))
    assert least(q.quotas[0].min_share, 2) == 0
    q, _ = relax_rule(replace(p, assign_all=True), rule("assign_all", "assign_all"))
    assert q.assign_all is False
    with pytest.raises(ValueError, match=r"must name a partner of the round\. Got 'P9'"):
        relax_rule(p, rule("cap[partner=P9]", "cap"))
    with pytest.raises(ValueError, match="has no one-step relaxation"):
        relax_rule(p, rule("weird", "weird"))


def test_unknown_rule_name_is_named():
    p = make_problem(PAIRS, [("P1", "gold", 2), ("P2", "silver", 5)])
    with pytest.raises(ValueError, match=r"'cap\[partner=P7\]' is not a rule of this round"):
        price_rules_by_resolve(p, solve(p), rules=["cap[partner=P7]"])


def test_network_prices_match_resolve():
    """The solver's flow potentials are exact one-step prices: re-solving agrees."""
    for seed in range(6):
        p = random_problem(seed, 25, 5, 3, tiers=(TierRule("gold", 0.2, 0.6),))
        p = replace(p, floor=np.minimum(1, p.capacity_units).astype(np.int64))
        try:
            alloc = solve(p)
        except InfeasiblePolicyError:
            continue
        for flow_rule, resolved in zip(alloc.rules, price_rules_by_resolve(p, alloc, alloc.rules),
                                       strict=True):
            if flow_rule.kind in ("cap", "floor", "tier_max_share", "tier_min_share"):
                assert resolved.price == pytest.approx(flow_rule.price, abs=1e-7), flow_rule.rule


@st.composite
def rounds(draw):
    seed = draw(st.integers(0, 10_000))
    tiers = draw(st.sampled_from([(), (TierRule("gold", 0.1, 0.6),),
                                  (TierRule("bronze", min_share=0.2),)]))
    quotas = draw(st.sampled_from([(), (Quota("gold", "high", max_share=0.5),)]))
    p = random_problem(seed, draw(st.integers(2, 25)), draw(st.integers(1, 5)),
                       draw(st.integers(1, 3)), tiers=tiers, quotas=quotas)
    floor = np.minimum(draw(st.integers(0, 2)), p.capacity_units).astype(np.int64)
    return replace(p, floor=floor, max_per_partner=draw(st.one_of(st.none(),
                                                                  st.integers(2, 12))))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rounds())
def test_relaxing_a_rule_never_lowers_the_objective(problem):
    try:
        alloc = solve(problem, time_limit_s=10)
    except InfeasiblePolicyError:
        return
    assert alloc.status == "optimal"
    priced = price_rules_by_resolve(problem, alloc, alloc.rules, time_limit_s=10)
    assert len(priced) == len(alloc.rules)
    for r in priced:
        assert math.isfinite(r.price), r.description
        assert r.price >= -1e-7, f"{r.rule}: {r.description}"
