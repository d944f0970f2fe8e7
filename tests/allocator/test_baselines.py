"""Baselines on hand-checkable rounds (exact outputs) and their caps on random rounds."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from allocator.baselines import (
    allocation_objective,
    greedy,
    lead_pairs,
    round_robin,
    rule_cascade,
    run_baselines,
    tier_ranks,
    tier_weighted_round_robin,
)
from allocator.policy import TierRule
from allocator.problem import AllocationProblem


def _problem(
    scores: Sequence[Sequence[float | None]],
    capacity: Sequence[float],
    tiers: Sequence[str] | None = None,
    tier_rules: tuple[TierRule, ...] = (),
    max_per_partner: int | None = None,
    effort: Sequence[Sequence[float]] | None = None,
    assign_all: bool = False,
) -> AllocationProblem:
    """A round from a lead × partner score table; ``None`` marks an ineligible pair."""
    n, m = len(scores), len(capacity)
    pl, pp, ps, pe = [], [], [], []
    for i, row in enumerate(scores):
        for j, s in enumerate(row):
            if s is not None:
                pl.append(i)
                pp.append(j)
                ps.append(s)
                pe.append(effort[i][j] if effort is not None else 1.0)
    return AllocationProblem(
        lead_ids=np.array([f"L{i}" for i in range(n)], dtype=object),
        lead_intent=np.array([""] * n, dtype=object),
        partner_ids=np.array([f"P{j}" for j in range(m)], dtype=object),
        partner_tier=np.array(list(tiers) if tiers else ["gold"] * m, dtype=object),
        capacity_units=np.array(capacity, dtype=float),
        floor=np.zeros(m, dtype=np.int64),
        pair_lead=np.array(pl, dtype=np.int64),
        pair_partner=np.array(pp, dtype=np.int64),
        pair_score=np.array(ps, dtype=float),
        pair_effort=np.array(pe, dtype=float) if effort is not None else None,
        round_size=n,
        max_per_partner=max_per_partner,
        tiers=tier_rules,
        assign_all=assign_all,
    )


def test_round_robin_rotates_over_partners():
    p = _problem([[0.1, 0.1, 0.1]] * 5, capacity=[10, 10, 10])
    assert round_robin(p).tolist() == [0, 1, 2, 0, 1]


def test_round_robin_skips_ineligible_and_full_partners():
    # L1 is not eligible for P1 (next in rotation) -> P2; P0 holds one lead only.
    p = _problem(
        [[0.1, 0.1, 0.1], [0.1, None, 0.1], [0.1, 0.1, 0.1], [0.1, 0.1, 0.1]],
        capacity=[1, 10, 10],
    )
    assert round_robin(p).tolist() == [0, 2, 1, 2]


def test_round_robin_respects_max_per_partner_and_leaves_the_rest():
    p = _problem([[0.1, 0.1]] * 5, capacity=[10, 10], max_per_partner=2)
    assert round_robin(p).tolist() == [0, 1, 0, 1, -1]


def test_round_robin_counts_effort_units_against_capacity():
    p = _problem(
        [[0.1, 0.1]] * 3, capacity=[2, 1], effort=[[1.5, 1.5], [1.0, 1.0], [0.5, 0.5]]
    )
    # L0 (1.5) -> P0; L1 -> P1 (1 unit, full); L2 (0.5) -> P0 (1.5 + 0.5 = 2).
    assert round_robin(p).tolist() == [0, 1, 0]


def test_tier_weighted_round_robin_gives_turns_by_weight():
    rules = (TierRule("gold", weight=2.0), TierRule("bronze", weight=1.0))
    p = _problem([[0.1, 0.1]] * 6, capacity=[10, 10], tiers=["gold", "bronze"], tier_rules=rules)
    assert tier_weighted_round_robin(p).tolist() == [0, 1, 0, 0, 1, 0]


def test_tier_weighted_round_robin_moves_on_when_the_heavy_partner_is_full():
    rules = (TierRule("gold", weight=3.0),)
    p = _problem([[0.1, 0.1]] * 4, capacity=[2, 10], tiers=["gold", "silver"], tier_rules=rules)
    # silver has no rule: weight 1.
    assert tier_weighted_round_robin(p).tolist() == [0, 0, 1, 1]


def test_greedy_takes_best_pairs_first():
    p = _problem([[0.9, 0.8], [0.85, 0.1]], capacity=[1, 1])
    lp = greedy(p)
    assert lp.tolist() == [0, 1]
    assert allocation_objective(p, lp) == pytest.approx(1.0)


def test_greedy_skips_negative_scores_unless_every_lead_must_be_placed():
    scores = [[0.5, None], [-0.2, None]]
    assert greedy(_problem(scores, capacity=[5, 5])).tolist() == [0, -1]
    assert greedy(_problem(scores, capacity=[5, 5], assign_all=True)).tolist() == [0, 0]


def test_rule_cascade_prefers_the_highest_tier_with_room():
    rules = (TierRule("silver", weight=1.0), TierRule("gold", weight=3.0))
    tiers = ["silver", "gold", "gold"]
    scores = [[0.9, 0.1, 0.2], [0.9, 0.1, 0.2], [0.9, 0.1, 0.2]]
    p = _problem(scores, capacity=[5, 1, 1], tiers=tiers, tier_rules=rules)
    # gold ranks first by weight; best gold partner P2, then P1, then silver P0.
    assert rule_cascade(p).tolist() == [2, 1, 0]
    # An explicit order (the pool cascade) overrides the weights.
    assert rule_cascade(p, tier_order=["silver", "gold"]).tolist() == [0, 0, 0]


def test_tier_ranks_by_weight_then_listed_order_then_unknown_alphabetically():
    rules = (TierRule("gold", weight=1.0), TierRule("platinum", weight=4.0))
    p = _problem([[0.1] * 4], capacity=[1] * 4, tiers=["zinc", "gold", "platinum", "alu"],
                 tier_rules=rules)
    assert tier_ranks(p).tolist() == [3, 1, 0, 2]


def test_run_baselines_names_every_rule():
    p = _problem([[0.9, 0.8], [0.85, 0.1]], capacity=[1, 1])
    out = run_baselines(p)
    assert sorted(out) == ["greedy", "round_robin", "rule_cascade", "tier_weighted_round_robin"]
    assert out["round_robin"].tolist() == [0, 1]


def test_lead_pairs_rejects_an_ineligible_assignment():
    p = _problem([[0.9, None], [0.85, 0.1]], capacity=[1, 1])
    assert lead_pairs(p, np.array([0, 1])).tolist() == [0, 2]
    with pytest.raises(ValueError, match=r"Lead 'L0' is given partner 'P1'.*not an eligible pair"):
        lead_pairs(p, np.array([1, -1]))
    with pytest.raises(ValueError, match="Lead 'L1' has partner index 7"):
        lead_pairs(p, np.array([0, 7]))


@pytest.mark.parametrize("seed", range(6))
def test_every_baseline_keeps_caps_and_eligibility_on_random_rounds(seed):
    rng = np.random.default_rng(seed)
    n, m = 60, 7
    mask = rng.random((n, m)) < 0.4
    scores = [[float(rng.random()) if mask[i, j] else None for j in range(m)] for i in range(n)]
    effort = rng.choice([0.5, 1.0, 2.0], size=(n, m)).tolist()
    cap = rng.integers(0, 12, size=m).astype(float).tolist()
    tiers = rng.choice(["gold", "silver"], size=m).tolist()
    p = _problem(scores, cap, tiers=tiers, max_per_partner=6, effort=effort)
    for name, lp in run_baselines(p).items():
        pairs = lead_pairs(p, lp)  # raises on an ineligible pair
        chosen = pairs[pairs >= 0]
        assert p.pair_effort is not None
        units = np.bincount(p.pair_partner[chosen], weights=p.pair_effort[chosen], minlength=m)
        counts = np.bincount(p.pair_partner[chosen], minlength=m)
        assert np.all(units <= np.array(cap) + 1e-9), name
        assert np.all(counts <= 6), name
        # Nothing is left out while an eligible partner still had room for it.
        for i in np.flatnonzero(lp < 0):
            for k in np.flatnonzero(p.pair_lead == i):
                j = p.pair_partner[k]
                assert counts[j] >= 6 or units[j] + p.pair_effort[k] > cap[j] + 1e-9, name
