"""Held-out metrics: ECE by hand, calibration of a known-good predictor, groups, the diagram."""

from __future__ import annotations

import numpy as np
import pytest

from models.evaluate import (
    classification_metrics,
    compare_metrics,
    equal_mass_bins,
    expected_calibration_error,
    metrics_by_group,
    plot_reliability,
    reliability_table,
)


def test_ece_by_hand_on_equal_mass_bins():
    # 20 predictions, 10 bins of 2 after sorting; bin k holds p = 0.05k (twice)
    p = np.repeat(np.arange(10) * 0.05, 2)
    y = np.zeros(20)
    y[[1, 3, 19]] = 1  # bins 0, 1 and 9 each have one positive: observed 0.5
    observed = np.array([0.5, 0.5, 0, 0, 0, 0, 0, 0, 0, 0.5])
    expected = np.mean(np.abs(np.arange(10) * 0.05 - observed))
    assert expected_calibration_error(y, p) == pytest.approx(expected)
    table = reliability_table(y, p)
    assert table["n"].tolist() == [2] * 10
    np.testing.assert_allclose(table["observed"], observed)
    assert (table["lower"] <= table["observed"]).all()
    assert (table["upper"] >= table["observed"]).all()


def test_equal_mass_bins_split_ties_by_position():
    bins = equal_mass_bins(np.full(100, 0.3), 10)
    assert np.bincount(bins).tolist() == [10] * 10


def test_true_probabilities_are_calibrated_and_a_shift_is_not():
    rng = np.random.default_rng(0)
    p = rng.beta(1.2, 10, 200_000)
    y = (rng.random(p.size) < p).astype(int)
    assert expected_calibration_error(y, p) < 0.003
    assert expected_calibration_error(y, np.clip(p + 0.05, 0, 1)) == pytest.approx(0.05, abs=0.005)


def test_metrics_and_groups():
    rng = np.random.default_rng(1)
    p = rng.uniform(0.01, 0.5, 4000)
    y = (rng.random(4000) < p).astype(int)
    m = classification_metrics(y, p)
    assert set(m) == {"auc", "log_loss", "brier", "ece", "n", "positives", "mean_predicted",
                      "observed_rate"}
    assert 0.6 < m["auc"] < 0.8
    assert m["brier"] == pytest.approx(np.mean((p - y) ** 2))
    groups = np.where(np.arange(4000) % 2 == 0, "gold", None)
    by = metrics_by_group(y, p, groups)
    assert set(by) == {"gold", "(missing)"} and by["gold"]["n"] == 2000
    assert classification_metrics(np.zeros(5), np.full(5, 0.1))["auc"] is None


def test_compare_metrics_is_current_minus_previous():
    change = compare_metrics({"auc": 0.7, "log_loss": 0.3, "brier": 0.08, "ece": 0.01},
                             {"auc": 0.65, "log_loss": 0.31, "ece": None})
    assert change["auc"] == pytest.approx(0.05)
    assert change["log_loss"] == pytest.approx(-0.01)
    assert change["brier"] is None and change["ece"] is None


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        ([0, 1], [0.5], "same length; got 2 outcomes and 1 probabilities"),
        ([0, 2], [0.5, 0.5], "Outcomes y must be 0 or 1"),
        ([0, 1], [0.5, 1.5], r"Probabilities p must be finite and in \[0, 1\]"),
        ([], [], "empty set of predictions"),
    ],
)
def test_bad_inputs_are_named(y, p, message):
    with pytest.raises(ValueError, match=message):
        classification_metrics(y, p)


def test_reliability_diagram_is_a_png(tmp_path):
    rng = np.random.default_rng(2)
    p = rng.uniform(0, 0.4, 3000)
    y = (rng.random(3000) < p).astype(int)
    extreme = np.r_[np.zeros(1500), np.ones(1500)]  # bins observed at exactly 0 and 1
    out = plot_reliability({"model": (y, p), "shifted": (y, p * 0.8),
                            "extreme": (extreme, np.linspace(0.01, 0.99, 3000))},
                           tmp_path / "rel.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
