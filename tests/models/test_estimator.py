"""ConversionModel against scikit-learn's estimator checks and on its own terms."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from models.estimator import ConversionModel
from models.evaluate import expected_calibration_error


def _expected_failed_checks(estimator: ConversionModel) -> dict[str, str]:
    # Every applicable check passes.  What does not run, and why:
    # - multi-class checks: the `multi_class=False` tag makes scikit-learn test instead
    #   that fitting 3 classes raises "Only binary classification is supported";
    # - sample-weight checks: `fit` takes no sample_weight (histories are unweighted);
    # - sparse-input checks: the model reads dense feature matrices only
    #   (scikit-learn then checks that sparse input raises a clear TypeError);
    # - array-API checks: skipped by scikit-learn unless SCIPY_ARRAY_API=1.
    # The gbm instance uses leaves of 10 rows (default 100, tuned for histories of
    # thousands of rows): scikit-learn's accuracy check fits ~100 rows of blobs.
    return {}


@parametrize_with_checks(
    [ConversionModel(kind="gbm", max_iter=20, min_samples_leaf=10),
     ConversionModel(kind="logistic")],
    expected_failed_checks=_expected_failed_checks,
)
def test_sklearn_contract(estimator, check):
    check(estimator)


def _logistic_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    X[:, 3] = rng.integers(0, 4, n)
    logit = -2.2 + 0.9 * X[:, 0] - 0.6 * X[:, 1] + 0.5 * (X[:, 3] == 2) + 0.4 * X[:, 0] * X[:, 2]
    p = 1 / (1 + np.exp(-logit))
    return X, (rng.random(n) < p).astype(int), p


def test_gbm_probabilities_are_calibrated_on_held_out_rows():
    X, y, _ = _logistic_data(24_000)
    model = ConversionModel(kind="gbm", categorical_features=[3]).fit(X[:16_000], y[:16_000])
    assert model.calibration_method_ in ("isotonic", "sigmoid")
    assert set(model.calibration_log_loss_) == {"isotonic", "sigmoid"}
    assert model.calibration_method_ == min(model.calibration_log_loss_,
                                            key=model.calibration_log_loss_.get)
    p = model.predict_positive(X[16_000:])
    assert expected_calibration_error(y[16_000:], p) < 0.02


def test_named_calibration_is_used_and_small_data_skips_it():
    X, y, _ = _logistic_data(3000)
    assert ConversionModel(calibration="sigmoid").fit(X, y).calibration_method_ == "sigmoid"
    assert ConversionModel(calibration="none").fit(X, y).calibration_method_ == "none"
    assert ConversionModel(kind="logistic").fit(X, y).calibration_method_ == "none"
    few = ConversionModel().fit(X[:40], np.r_[np.ones(8, int), np.zeros(32, int)])
    assert few.calibration_method_ == "none"  # 8 rows x 20% < 5 positives to calibrate on


def test_logistic_fast_path_equals_the_pipeline():
    X, y, _ = _logistic_data(3000)
    X[::7, 0] = np.nan
    X[::11, 3] = np.nan
    X[:, 2] = np.nan  # an all-missing column is kept and imputed with 0
    model = ConversionModel(kind="logistic", categorical_features=[3]).fit(X, y)
    X_new, _, _ = _logistic_data(500, seed=1)
    X_new[0, 3] = 9.0  # unseen category
    X_new[::3, 0] = np.nan
    np.testing.assert_allclose(model.predict_proba(X_new),
                               model.estimator_.predict_proba(X_new), atol=1e-12)


def test_categorical_features_by_name_on_a_frame():
    X, y, _ = _logistic_data(2000)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "segment"])
    model = ConversionModel(categorical_features=["segment"]).fit(frame, y)
    assert list(model.feature_names_in_) == ["a", "b", "c", "segment"]
    with pytest.raises(ValueError, match=r"unknown columns: \['nope'\]"):
        ConversionModel(categorical_features=["nope"]).fit(frame, y)
    with pytest.raises(ValueError, match="names columns but X has no column names"):
        ConversionModel(categorical_features=["segment"]).fit(X, y)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"kind": "forest"}, r"'kind' parameter of ConversionModel must be 'gbm' or 'logistic'"
                             r"\. Got 'forest' instead"),
        ({"calibration": "beta"}, r"'calibration' parameter .* Got 'beta' instead"),
        ({"calibration_fraction": 1.5}, r"'calibration_fraction' .* in \(0, 1\)\. Got 1\.5"),
        ({"calibration_split": "random"}, r"'calibration_split' .* Got 'random' instead"),
    ],
)
def test_bad_parameters_are_named(params, message):
    X, y, _ = _logistic_data(200)
    with pytest.raises(ValueError, match=message):
        ConversionModel(**params).fit(X, y)


def test_binary_only_and_one_class_errors():
    X, _, _ = _logistic_data(90)
    with pytest.raises(ValueError, match=r"Only binary classification is supported.*3 class"):
        ConversionModel().fit(X, np.arange(90) % 3)
    with pytest.raises(ValueError, match="exactly 2 classes in y; got 1 class"):
        ConversionModel().fit(X, np.zeros(90))


def test_string_labels_and_pickle_round_trip():
    X, y, _ = _logistic_data(2000)
    labels = np.where(y == 1, "won", "lost")
    model = ConversionModel(max_iter=30).fit(X, labels)
    assert model.classes_.tolist() == ["lost", "won"]
    assert set(model.predict(X)) <= {"lost", "won"}
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))
