"""Reasons on hand-checked rounds: each kind of reason pinned to its exact sentence.

The allocations here are the optimum of each tiny round, worked out by hand
(see each test), with the prices a dual gives; explain computes no prices, it
quotes them, so the sentences can be checked word for word.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import pandas as pd
import pytest

from allocator.eligibility import find_eligible_pairs
from allocator.explain import explain_allocation, fmt
from allocator.policy import Policy, Quota, TierRule
from allocator.problem import Allocation, AllocationProblem, RulePrice, Status


def _problem(
    scores: Sequence[Sequence[float | None]],
    capacity: Sequence[float],
    tiers: Sequence[str] | None = None,
    floor: Sequence[int] | None = None,
    intents: Sequence[str] | None = None,
    tier_rules: tuple[TierRule, ...] = (),
    quotas: tuple[Quota, ...] = (),
    max_per_partner: int | None = None,
    effort: Sequence[Sequence[float]] | None = None,
) -> AllocationProblem:
    n, m = len(scores), len(capacity)
    cells = [(i, j, s) for i, row in enumerate(scores) for j, s in enumerate(row) if s is not None]
    return AllocationProblem(
        lead_ids=np.array([f"L{i}" for i in range(n)], dtype=object),
        lead_intent=np.array(list(intents) if intents else [""] * n, dtype=object),
        partner_ids=np.array([f"P{j}" for j in range(m)], dtype=object),
        partner_tier=np.array(list(tiers) if tiers else ["gold"] * m, dtype=object),
        capacity_units=np.array(capacity, dtype=float),
        floor=np.array(floor if floor else [0] * m, dtype=np.int64),
        pair_lead=np.array([c[0] for c in cells], dtype=np.int64),
        pair_partner=np.array([c[1] for c in cells], dtype=np.int64),
        pair_score=np.array([c[2] for c in cells], dtype=float),
        pair_effort=None if effort is None else np.array(
            [effort[i][j] for i, j, _ in cells], dtype=float),
        round_size=n,
        max_per_partner=max_per_partner,
        tiers=tier_rules,
        quotas=quotas,
    )


def _allocation(problem: AllocationProblem, lead_partner: Sequence[int],
                prices: Sequence[float], rules: Sequence[RulePrice] = (),
                status: str = "optimal", gap: float = 0.0) -> Allocation:
    lp = np.array(lead_partner, dtype=np.int64)
    pair = np.full(problem.n_leads, -1, dtype=np.int64)
    for k, (i, j) in enumerate(zip(problem.pair_lead, problem.pair_partner, strict=True)):
        if lp[i] == j:
            pair[i] = k
    chosen = pair[pair >= 0]
    objective = float(problem.pair_score[chosen].sum())
    return Allocation(status=cast(Status, status), lead_partner=lp, lead_pair=pair,
                      objective=objective,
                      bound=objective * (1 + gap), gap=gap, method="hand",
                      partner_price=np.array(prices, dtype=float), rules=tuple(rules),
                      price_source="flow potentials")


def _rule(name: str, kind: str, limit: float, used: float, price: float) -> RulePrice:
    return RulePrice(rule=name, kind=kind, binding=True, limit=limit, used=used, price=price,
                     price_source="flow potentials", description=name)


def _row(expl, lead_id: str) -> pd.Series:
    return expl.leads.set_index("lead_id").loc[lead_id]


def test_a_full_cap_that_stopped_a_better_partner():
    # L0->P0 + L1->P1 = 1.5 beats L1->P0 + L0->P1 = 1.3; one more unit of P0 is worth 0.2.
    p = _problem([[0.9, 0.5], [0.8, 0.6]], capacity=[1, 5])
    a = _allocation(p, [0, 1], prices=[0.2, 0.0],
                    rules=[_rule("cap[partner=P0]", "cap", 1, 1, 0.2)])
    e = explain_allocation(p, a)
    best, capped = _row(e, "L0"), _row(e, "L1")
    assert best["reason"] == "P0 has the best score of its 2 eligible partners (0.9)"
    assert best["rank"] == 1 and best["reason_kind"] == "best"
    assert capped["reason"] == (
        "given to P1 (score 0.6, rank 2 of 2): partner P0 had a higher score (0.8 vs 0.6) but "
        "its capacity of 1 was full; one more unit of that cap is worth 0.2 expected "
        "conversions (flow potentials)")
    assert (capped["stopped_by_rule"], capped["stopped_by_partner"]) == ("cap[partner=P0]", "P0")
    assert capped["price"] == pytest.approx(0.2)
    assert capped["rank"] == 2 and capped["n_eligible"] == 2


def test_a_floor_that_pulled_a_lead_down():
    # P1 must get one lead: giving it L1 costs 0.3, giving it L0 costs 0.8.
    p = _problem([[0.9, 0.1], [0.8, 0.5]], capacity=[5, 5], floor=[0, 1])
    a = _allocation(p, [0, 1], prices=[0.0, -0.3],
                    rules=[_rule("floor[partner=P1]", "floor", 1, 1, 0.3)])
    e = explain_allocation(p, a, value_unit="expected revenue")
    row = _row(e, "L1")
    assert row["reason"] == (
        "given to P1 (score 0.5, rank 2 of 2) to meet P1's floor of 1 lead; floor price 0.3 "
        "(flow potentials); partner P0 had a higher score (0.8 vs 0.5)")
    assert (row["stopped_by_rule"], row["reason_kind"]) == ("floor[partner=P1]", "floor")
    partners = e.partners.set_index("partner_id")
    assert bool(partners.loc["P1", "floor_binding"]) and partners.loc["P1", "floor_price"] == 0.3
    assert not bool(partners.loc["P0", "cap_binding"])


def test_a_quota_that_stopped_the_better_tier():
    # gold may take 50% of the 2 high-intent leads: 1 lead.
    quota = Quota(tier="gold", intent="high", max_share=0.5)
    p = _problem([[0.9, 0.3], [0.9, 0.3]], capacity=[5, 5], tiers=["gold", "silver"],
                 intents=["high", "high"], quotas=(quota,))
    a = _allocation(p, [0, 1], prices=[0.0, 0.0],
                    rules=[_rule(quota.rule_name, "quota_max", 1, 1, 0.6)])
    row = _row(explain_allocation(p, a), "L1")
    assert row["reason"] == (
        "given to P1 (score 0.3, rank 2 of 2): partner P0 had a higher score (0.9 vs 0.3) but "
        "the quota of tier gold on high-intent leads was full (1 lead); one more lead of that "
        "quota is worth 0.6 expected conversions (flow potentials)")
    assert row["stopped_by_rule"] == "quota[tier=gold,intent=high]"


def test_a_tier_max_share_computed_from_the_problem_when_the_solver_names_no_rule():
    tiers = (TierRule("gold", max_share=0.5),)
    p = _problem([[0.9, 0.3]] * 4, capacity=[5, 5], tiers=["gold", "silver"], tier_rules=tiers)
    a = _allocation(p, [0, 0, 1, 1], prices=[0.0, 0.0])
    row = _row(explain_allocation(p, a), "L3")
    assert row["reason_kind"] == "tier_max"
    assert "tier gold was at its max share (2 leads)" in row["reason"]
    assert np.isnan(row["price"])


def test_a_tier_min_share_that_pulled_a_lead_down():
    tiers = (TierRule("bronze", min_share=0.5),)
    p = _problem([[0.9, 0.2], [0.9, 0.2]], capacity=[5, 5], tiers=["gold", "bronze"],
                 tier_rules=tiers)
    a = _allocation(p, [0, 1], prices=[0.0, 0.0],
                    rules=[_rule("tier_share[tier=bronze]", "tier_min_share", 1, 1, 0.7)])
    row = _row(explain_allocation(p, a), "L1")
    assert row["reason"] == (
        "given to P1 (score 0.2, rank 2 of 2) to meet tier bronze's min share (1 lead); "
        "price 0.7 (flow potentials); partner P0 had a higher score (0.9 vs 0.2)")


def test_max_share_per_partner_and_effort_caps_are_named():
    p = _problem([[0.9, 0.4]] * 3, capacity=[9, 9], max_per_partner=2)
    row = _row(explain_allocation(p, _allocation(p, [0, 0, 1], prices=[0.5, 0.0])), "L2")
    assert row["stopped_by_rule"] == "max_share_per_partner[partner=P0]"
    assert "it already had 2 leads, the most one partner may get in this round" in row["reason"]

    p = _problem([[0.9, 0.4]] * 2, capacity=[3, 9], effort=[[2.0, 2.0], [2.0, 2.0]])
    row = _row(explain_allocation(p, _allocation(p, [0, 1], prices=[0.25, 0.0])), "L1")
    assert row["stopped_by_rule"] == "cap[partner=P0]"
    assert "its capacity of 3 units had 1 left, less than this lead's effort of 2" in row["reason"]
    assert "worth 0.25 expected conversions (flow potentials)" in row["reason"]


def test_unassigned_leads_say_why():
    # P0 holds one lead; L1's only partner is full; L2's best score is negative.
    p = _problem([[0.9, None], [0.5, None], [None, -0.1]], capacity=[1, 5])
    a = _allocation(p, [0, -1, -1], prices=[0.5, 0.0],
                    rules=[_rule("cap[partner=P0]", "cap", 1, 1, 0.5)])
    e = explain_allocation(p, a)
    full, negative = _row(e, "L1"), _row(e, "L2")
    assert full["reason"] == ("not assigned: its only eligible partner was full or at a limit: "
                              "P0 capacity 1 full (price 0.5)")
    assert full["status"] == "unassigned" and full["partner_id"] == ""
    assert pd.isna(full["rank"]) and full["stopped_by_rule"] == "cap[partner=P0]"
    assert negative["reason"] == (
        "not assigned: its best score (-0.1, partner P1) is not positive and the round need not "
        "place every lead (assign_all is off)")


def test_an_unexplained_move_is_put_on_the_solver_gap():
    p = _problem([[0.9, 0.5]], capacity=[5, 5])
    a = _allocation(p, [1], prices=[0.0, 0.0], status="time_limit", gap=0.02)
    row = _row(explain_allocation(p, a), "L0")
    assert row["reason_kind"] == "price"
    assert "the solver stopped before proving this round optimal (status time_limit, gap 2%)" in (
        row["reason"])


def test_held_back_leads_owners_and_exclusions_come_from_eligibility():
    partners = pd.DataFrame({
        "partner_id": ["A", "B", "C"], "tier": ["gold"] * 3,
        "regions": [("EU",), ("EU",), ("US",)], "certifications": [(), (), ()],
        "capacity": [5, 5, 5], "active": [True, True, True]})
    leads = pd.DataFrame({
        "lead_id": ["x", "y", "z"], "region": ["EU", "EU", "EU"],
        "qualification_score": [80.0, 90.0, 10.0],
        "account_owner_partner_id": [None, "B", None]})
    policy = Policy(qualification_min_score=40, require_certification=False)
    elig = find_eligible_pairs(partners, leads, policy)
    in_round = elig.leads_in_round
    # x: A and B (territory excludes C); y: owner B only.
    pairs = elig.pairs
    p = AllocationProblem(
        lead_ids=leads["lead_id"].to_numpy(dtype=object)[in_round],
        lead_intent=np.array([""] * len(in_round), dtype=object),
        partner_ids=partners["partner_id"].to_numpy(dtype=object),
        partner_tier=partners["tier"].to_numpy(dtype=object),
        capacity_units=np.array([5.0, 5.0, 5.0]), floor=np.zeros(3, dtype=np.int64),
        pair_lead=np.searchsorted(in_round, pairs["lead_index"].to_numpy()),
        pair_partner=pairs["partner_index"].to_numpy(),
        pair_score=np.array([0.4, 0.3, 0.2]), round_size=len(in_round))
    e = explain_allocation(p, _allocation(p, [0, 1], prices=[0.0, 0.0, 0.0]), elig)
    assert _row(e, "x")["reason"] == (
        "A has the best score of its 2 eligible partners (0.4); "
        "partners excluded by rule: territory 1")
    assert _row(e, "y")["reason"].startswith("B is its account owner (score 0.2)")
    held = _row(e, "z")
    assert held["status"] == "held_back"
    assert held["reason"] == "held back: qualification score 10 is below the minimum of 40"
    assert list(e.leads["lead_id"]) == ["x", "y", "z"]


def test_partner_frame_reports_received_value_and_binding_cap():
    p = _problem([[0.9, 0.5], [0.8, 0.6]], capacity=[1, 5])
    e = explain_allocation(p, _allocation(p, [0, 1], prices=[0.2, 0.0]))
    parts = e.partners.set_index("partner_id")
    assert parts["received"].tolist() == [1, 1]
    assert parts["expected_value"].tolist() == pytest.approx([0.9, 0.6])
    assert parts["cap_binding"].tolist() == [True, False]
    assert e.rules == []


def test_a_mismatched_allocation_is_refused():
    p = _problem([[0.9, 0.5]], capacity=[1, 5])
    a = _allocation(p, [0], prices=[0.0, 0.0])
    bad = Allocation(status="optimal", lead_partner=np.array([1]), lead_pair=a.lead_pair,
                     objective=0.9, bound=0.9, gap=0.0, method="hand",
                     partner_price=np.zeros(2))
    with pytest.raises(ValueError, match="lead_pair of lead 'L0' does not match"):
        explain_allocation(p, bad)


@pytest.mark.parametrize(("x", "text"), [
    (0.3125, "0.312"), (4.25, "4.25"), (12500.4, "12,500"), (0.0, "0"), (float("nan"), "n/a"),
    (40.0, "40"), (12.34, "12.3")])
def test_numbers_read_as_a_person_writes_them(x, text):
    assert fmt(x) == text


# -- with the real solver: its prices and rule names are what the reasons quote ------------------

_SOLVED_CASES: dict[str, tuple[dict[str, Any], str | None, str, str, float]] = {
    "cap": (dict(scores=[[0.9, 0.5], [0.8, 0.6]], capacity=[1, 5]),
            "L1", "cap", "cap[partner=P0]", 0.2),
    "floor": (dict(scores=[[0.9, 0.1], [0.8, 0.5]], capacity=[5, 5], floor=[0, 1]),
              "L1", "floor", "floor[partner=P1]", 0.3),
    "quota": (dict(scores=[[0.9, 0.3], [0.9, 0.3]], capacity=[5, 5], tiers=["gold", "silver"],
                   intents=["high", "high"],
                   quotas=(Quota(tier="gold", intent="high", max_share=0.5),)),
              None, "quota_max", "quota[tier=gold,intent=high]", 0.6),
    "tier_min": (dict(scores=[[0.9, 0.2], [0.9, 0.2]], capacity=[5, 5], tiers=["gold", "bronze"],
                      tier_rules=(TierRule("bronze", min_share=0.5),)),
                 None, "tier_min", "tier_share[tier=bronze]", 0.7),
    "max_per_partner": (dict(scores=[[0.9, 0.4]] * 3, capacity=[9, 9], max_per_partner=2),
                        "L2", "max_share_per_partner", "max_share_per_partner[partner=P0]", 0.5),
}


@pytest.mark.parametrize("case", sorted(_SOLVED_CASES))
def test_reasons_quote_the_solvers_own_prices(case):
    from allocator.solve import solve

    kwargs, lead, kind, rule, price = _SOLVED_CASES[case]
    p = _problem(**kwargs)
    a = solve(p, time_limit_s=5)
    e = explain_allocation(p, a)
    moved = e.leads[e.leads["rank"] == 2]
    assert len(moved) == 1
    row = moved.iloc[0]
    if lead is not None:
        assert row["lead_id"] == lead
    assert (row["reason_kind"], row["stopped_by_rule"]) == (kind, rule)
    assert row["price"] == pytest.approx(price)
    assert row["price_source"] and row["price_source"] in row["reason"]
    assert (e.leads.loc[e.leads["rank"] == 1, "reason_kind"] == "best").all()


@pytest.mark.parametrize("seed", range(30))
def test_every_lead_of_an_optimal_round_that_missed_its_best_partner_names_a_rule(seed):
    # At an optimum, moving one lead to a better partner must break a rule; explain must find it.
    from allocator.errors import InfeasiblePolicyError
    from allocator.solve import solve

    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(5, 40)), int(rng.integers(2, 8))
    mask = rng.random((n, m)) < 0.5
    mask[np.arange(n), rng.integers(0, m, n)] = True
    scores = [[round(float(rng.random()), 3) if mask[i, j] else None for j in range(m)]
              for i in range(n)]
    p = _problem(
        scores, capacity=rng.integers(3, 10, m).astype(float).tolist(),
        tiers=rng.choice(["gold", "silver", "bronze"], m).tolist(),
        floor=rng.integers(0, 2, m).tolist(), intents=rng.choice(["high", "low"], n).tolist(),
        tier_rules=(TierRule("gold", max_share=float(rng.choice([0.3, 0.5, 1.0]))),
                    TierRule("bronze", min_share=float(rng.choice([0.0, 0.1, 0.2])))),
        quotas=(Quota("gold", "high", max_share=0.5),) if seed % 3 == 0 else (),
        max_per_partner=int(rng.integers(2, 10)) if seed % 2 else None)
    try:
        a = solve(p, time_limit_s=5)
    except InfeasiblePolicyError as exc:  # some random policies are: then they must say why
        assert exc.conflicts and exc.rules
        return
    assert a.status == "optimal"
    e = explain_allocation(p, a)
    assert not e.leads["reason_kind"].isin(["price", "unassigned_price"]).any()
    moved = e.leads[e.leads["rank"] > 1]
    assert (moved["stopped_by_rule"] != "").all()
    assert (moved["reason"].str.contains("had a higher score")).all()
