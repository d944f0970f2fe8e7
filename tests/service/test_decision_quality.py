"""Decision quality: allocations judged by the simulator's true probabilities."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest

from allocator.policy import DEFAULT_POLICY_TOML, policy_from_dict
from models.simulate import simulate_channel
from models.train import train_model
from service.decision_quality import evaluate_decisions, oracle_scorer, true_conversions
from service.pipeline import run_round


@pytest.fixture(scope="module")
def channel():
    ch = simulate_channel(60, 2500, 8000, seed=11)
    # unit effort keeps the round a network problem: exact and deterministic
    ch.leads["effort"] = 1.0
    return ch


@pytest.fixture(scope="module")
def policy():
    return policy_from_dict(tomllib.loads(DEFAULT_POLICY_TOML))


def test_true_conversions_sums_true_p_of_assigned_pairs(channel, policy):
    result = run_round(channel.partners, channel.leads, policy, scorer=oracle_scorer(channel))
    problem, lp = result.problem, result.allocation.lead_partner
    on = np.flatnonzero(lp >= 0)
    expected = sum(
        float(channel.true_p([problem.lead_ids[i]], [problem.partner_ids[lp[i]]])[0])
        for i in on[:50]
    )
    partial = lp.copy()
    partial[on[50:]] = -1
    assert true_conversions(channel, problem, partial) == pytest.approx(expected, rel=1e-12)
    # the oracle round's objective is exactly its true expected conversions
    assert true_conversions(channel, problem, lp) == pytest.approx(
        result.allocation.objective, rel=1e-9)


def test_oracle_as_the_model_closes_the_whole_gap(channel, policy):
    quality = evaluate_decisions(channel, policy, oracle_scorer(channel))
    assert quality.model == pytest.approx(quality.oracle, rel=1e-12)
    assert quality.gap_closed == pytest.approx(1.0)
    assert quality.oracle > quality.round_robin


def test_trained_model_beats_round_robin_and_never_the_oracle(channel, policy):
    trained = train_model(channel.history, channel.partners)
    quality = evaluate_decisions(channel, policy, trained.model)
    assert quality.round_robin < quality.model <= quality.oracle + 1e-9
    assert 0.0 < quality.gap_closed <= 1.0
    assert trained.metrics["ece"] <= 0.03
    # most of the gap is partner skill by vertical, learnt from 8,000 rows: the model closes
    # 0.75 of it here, 0.67 from conversions alone (no funnel stage), a lead-only model
    # (no partner_id) 0.25
    assert quality.gap_closed >= 0.6
    lead_only = train_model(channel.history, channel.partners, exclude=["partner_id"])
    blind = evaluate_decisions(channel, policy, lead_only.model)
    assert quality.gap_closed >= blind.gap_closed + 0.25
    conversions = train_model(channel.history, channel.partners, exclude=["stage"])
    no_funnel = evaluate_decisions(channel, policy, conversions.model)
    assert quality.gap_closed >= no_funnel.gap_closed + 0.04
    # what the model promises for its own allocation is reported and close to what it
    # delivers (the optimizer's curse would make it promise more; the shrunken partner
    # effects make it a little cautious instead: 1.9% below here, 3.3% on the demo)
    assert abs(quality.model_promised - quality.model) < 0.05 * quality.model
    assert set(quality.baselines) >= {"round_robin", "greedy", "rule_cascade"}
