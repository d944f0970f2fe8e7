"""Scoring pairs: same numbers as the history path, schema refusals, and quality on 50k rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from allocator.errors import InputError
from models.evaluate import expected_calibration_error
from models.scoring import score_pairs
from models.simulate import simulate_channel
from models.train import train_model
from tests.models.model_support import small_channel


@pytest.fixture(scope="module")
def trained():
    channel = small_channel()
    return channel, train_model(channel.history, channel.partners).model


def _round_pairs(channel) -> pd.DataFrame:
    truth = channel.truth
    return pd.DataFrame({
        "lead_id": truth["lead_id"],
        "partner_id": truth["partner_id"],
        "lead_index": pd.Index(channel.leads["lead_id"]).get_indexer(truth["lead_id"]),
        "partner_index": pd.Index(channel.partners["partner_id"]).get_indexer(
            truth["partner_id"]),
    })


def test_pair_scores_equal_the_history_path(trained):
    channel, model = trained
    pairs = _round_pairs(channel)
    scores = score_pairs(model, pairs, channel.leads, channel.partners)
    as_history = channel.leads.iloc[pairs["lead_index"]].reset_index(drop=True)
    as_history["partner_id"] = pairs["partner_id"].to_numpy()
    X = model.features.transform_history(as_history, channel.partners)
    np.testing.assert_allclose(scores, model.estimator.predict_positive(X), rtol=0, atol=1e-12)
    assert ((scores > 0) & (scores < 1)).all()


def test_ids_and_chunks_give_the_same_scores(trained):
    channel, model = trained
    pairs = _round_pairs(channel)
    full = score_pairs(model, pairs, channel.leads, channel.partners)
    by_id = score_pairs(model, pairs[["lead_id", "partner_id"]], channel.leads, channel.partners)
    chunked = score_pairs(model, pairs, channel.leads, channel.partners, chunk_size=7)
    np.testing.assert_array_equal(by_id, full)
    np.testing.assert_allclose(chunked, full, rtol=0, atol=1e-12)  # BLAS blocking rounds


def test_missing_and_changed_columns_are_refused_by_name(trained):
    channel, model = trained
    pairs = _round_pairs(channel)
    leads = channel.leads.drop(columns=["qualification_score", "vertical"])
    leads["deal_size"] = "large"
    partners = channel.partners.drop(columns=["tier"])
    with pytest.raises(InputError) as err:
        score_pairs(model, pairs, leads, partners)
    text = str(err.value)
    assert "4 problems" in text
    assert "leads, column 'qualification_score': missing: the model was trained with" in text
    assert "leads, column 'vertical': missing" in text
    assert "partners, column 'tier': missing" in text
    assert ("leads, column 'deal_size': value 'str': changed: the model was trained on numeric "
            "values (dtype float64) but this column holds text values") in text


def test_pairs_outside_the_frames_are_refused(trained):
    channel, model = trained
    pairs = pd.DataFrame({"lead_index": [0, len(channel.leads)], "partner_index": [0, 0]})
    with pytest.raises(InputError, match=r"1 pair\(s\) point outside the 120 rows of leads"):
        score_pairs(model, pairs, channel.leads, channel.partners)
    with pytest.raises(InputError, match="pairs need partner_index or partner_id"):
        score_pairs(model, pairs[["lead_index"]], channel.leads, channel.partners)


def test_lead_only_model_scores_pairs_by_lead(trained):
    channel, _ = trained
    result = train_model(channel.history.drop(columns=["partner_id"]), None)
    assert not result.model.schema.partner_aware
    pairs = _round_pairs(channel)
    scores = score_pairs(result.model, pairs, channel.leads, None)
    same_lead = pd.Series(scores).groupby(pairs["lead_index"]).nunique()
    assert (same_lead == 1).all()  # a lead-only model gives every partner of a lead one score


@pytest.mark.slow
def test_quality_on_50k_synthetic_history():
    """ECE <= 0.02 on the holdout of 50k rows, and the scores track the true p of the round."""
    channel = simulate_channel(300, 3000, 50_000, seed=2024, with_truth=True)
    result = train_model(channel.history, channel.partners)
    assert result.metrics["ece"] <= 0.02
    assert result.metrics["auc"] >= 0.65
    gbm = result.metrics if result.chosen == "gbm" else result.baseline
    assert gbm["ece"] <= 0.02 and gbm["auc"] >= 0.65  # the calibrated booster, kept or not
    hist = channel.history.sort_values("assigned_at", kind="stable").iloc[-10_000:]
    p_true = channel.true_p(hist["lead_id"], hist["partner_id"])
    oracle_auc = roc_auc_score(hist["converted"], p_true)
    assert result.metrics["auc"] >= oracle_auc - 0.08  # the latent noise caps everyone
    truth = channel.truth
    scores = score_pairs(result.model, truth[["lead_id", "partner_id"]], channel.leads,
                         channel.partners)
    assert np.corrcoef(scores, truth["p_true"])[0, 1] >= 0.6
    # calibrated against the truth itself, not only against sampled outcomes
    assert abs(scores.mean() - truth["p_true"].mean()) < 0.01
    draws = (np.random.default_rng(0).random(len(truth)) < truth["p_true"]).astype(int)
    assert expected_calibration_error(draws, scores) <= 0.02
