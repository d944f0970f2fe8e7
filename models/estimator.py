"""``ConversionModel``: one scikit-learn classifier for P(partner converts lead).

Two kinds behind one estimator:

- ``kind="gbm"``: :class:`~sklearn.ensemble.HistGradientBoostingClassifier`
  calibrated with :class:`~sklearn.calibration.CalibratedClassifierCV`.  The
  booster is fitted on the first ``1 - calibration_fraction`` of the rows and
  the calibrator on the rest; with ``calibration="auto"`` isotonic and sigmoid
  are compared by 3-fold cross-fitted log loss on the calibration rows (an
  isotonic regression and a Platt logistic fit on the booster's decision
  values, computed once) and the better method is kept.  One booster (not an
  ensemble of fold models) keeps scoring three million pairs inside the time
  budget.
- ``kind="logistic"``: an L2-regularized logistic regression on standardized
  numeric columns (median-imputed, with missing indicators) and one-hot
  categorical columns, the baseline.  Maximum likelihood makes it calibrated
  by construction, so its ``calibration`` defaults to none.

The estimator works on plain numeric arrays (every column numeric) and on the
matrices of :class:`models.features.FeatureBuilder`, whose categorical columns
are integer codes named by ``categorical_features``.  It is binary only.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import threadpool_limits

from models.linear_fast import LinearScorer

Kind = Literal["gbm", "logistic"]
CALIBRATION_METHODS = ("isotonic", "sigmoid")
# Below this many calibration rows per class a 3-fold choice between methods is noise.
_MIN_CALIBRATION_PER_CLASS = 5


class ConversionModel(ClassifierMixin, BaseEstimator):
    """Probability that a lead converts (binary classifier with calibrated output).

    Parameters
    ----------
    kind : {"gbm", "logistic"}, default="gbm"
        Gradient boosting with calibration, or the regularized logistic baseline.
    calibration : {"auto", "isotonic", "sigmoid", "none"} or None, default="auto"
        How raw scores become probabilities.  ``"auto"`` picks isotonic or
        sigmoid by cross-fitted log loss for ``kind="gbm"`` and means none for
        ``kind="logistic"``.  Calibration is skipped (``calibration_method_ ==
        "none"``) when the calibration rows hold fewer than 5 of either class.
    calibration_fraction : float, default=0.2
        Share of the rows kept for the calibrator.
    calibration_split : {"ordered", "stratified"}, default="stratified"
        ``"ordered"``: the calibration rows are the *last* rows as given (pass
        rows sorted by time for a time-ordered split); ``"stratified"``: a
        random split stratified by class.
    learning_rate, max_iter, max_leaf_nodes, max_depth, min_samples_leaf, l2_regularization
        Passed to the gradient boosting classifier.  At most 60 trees of
        depth 3 with leaves of at least 100 rows: scoring cost grows with the
        trees (about 55 ns per tree and pair here, so 60 trees keep 3M pairs
        near 10 CPU seconds even on a loaded machine), and on the 50k-row
        synthetic channel early stopping ended at 40–46 trees with a held-out
        AUC of 0.702–0.705, against 0.695 for 200 trees of 15 leaves.
    n_iter_no_change : int, default=20
        Early stopping patience, on 10% of the fit rows (when there are at
        least 10,000 rows, scikit-learn's ``early_stopping="auto"``).
    C : float, default=1.0
        Inverse L2 strength of the logistic regression.
    categorical_features : array-like of int, bool or str, or None, default=None
        Columns holding integer category codes (NaN = missing).  ``None``: all numeric.
    n_threads : int or None, default=1
        OpenMP and BLAS threads for fitting and predicting (``None``: the library default,
        all cores).  One thread is the default because on a shared machine
        oversubscribed OpenMP threads made fitting up to 8× slower here.
    random_state : int or None, default=0

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` had string column names.
    estimator_ : estimator
        What ``predict_proba`` runs: the calibrated booster or the logistic pipeline.
    base_estimator_ : estimator
        The uncalibrated model.
    calibration_method_ : str
        ``"isotonic"``, ``"sigmoid"`` or ``"none"``.
    calibration_log_loss_ : dict of str to float
        Cross-fitted log loss of each calibration method tried (empty when none was tried).
    n_iter_ : int
        Boosting iterations kept (after early stopping), or solver iterations.
    linear_ : LinearScorer or None
        The uncalibrated logistic pipeline compiled to arrays (what
        ``predict_proba`` runs for it: same numbers, no sparse one-hot matrix).
    """

    def __init__(
        self,
        kind: Kind = "gbm",
        calibration: str | None = "auto",
        calibration_fraction: float = 0.2,
        calibration_split: str = "stratified",
        learning_rate: float = 0.2,
        max_iter: int = 60,
        max_leaf_nodes: int = 8,
        max_depth: int | None = 3,
        min_samples_leaf: int = 100,
        l2_regularization: float = 1.0,
        n_iter_no_change: int = 20,
        C: float = 1.0,
        categorical_features: Any = None,
        n_threads: int | None = 1,
        random_state: int | None = 0,
    ) -> None:
        self.kind = kind
        self.calibration = calibration
        self.calibration_fraction = calibration_fraction
        self.calibration_split = calibration_split
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.max_leaf_nodes = max_leaf_nodes
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.n_iter_no_change = n_iter_no_change
        self.C = C
        self.categorical_features = categorical_features
        self.n_threads = n_threads
        self.random_state = random_state

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        tags.input_tags.allow_nan = True
        return tags

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, y: Any) -> ConversionModel:
        """Fit the model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Numeric features; categorical columns as integer codes.
        y : array-like of shape (n_samples,)
            Two classes; the second of ``np.unique(y)`` is the positive one.

        Returns
        -------
        self : ConversionModel
        """
        self._check_params()
        with threadpool_limits(self.n_threads):
            return self._fit(X, y)

    def _fit(self, X: Any, y: Any) -> ConversionModel:
        X, y = validate_data(self, X, y, ensure_all_finite="allow-nan", dtype=np.float64)
        target_type = type_of_target(y, input_name="y", raise_unknown=True)
        if target_type not in ("binary", "multiclass"):
            raise ValueError(
                f"ConversionModel needs a binary class target; got a {target_type!r} target."
            )
        self.classes_, y_coded = np.unique(y, return_inverse=True)
        if len(self.classes_) != 2:
            raise ValueError(
                "Only binary classification is supported: ConversionModel needs exactly 2 "
                f"classes in y; got {len(self.classes_)} class(es): {self.classes_[:5].tolist()}."
            )
        categorical = self._categorical_mask(X.shape[1])
        method = self._requested_calibration()
        if method == "none" or not self._can_calibrate(y_coded):
            self.base_estimator_ = self._make_base(categorical).fit(X, y_coded)
            self.estimator_ = self.base_estimator_
            self.calibration_method_ = "none"
            self.calibration_log_loss_: dict[str, float] = {}
            self.n_iter_ = self._n_iter()
            self.linear_ = (LinearScorer.from_pipeline(self.base_estimator_)
                            if self.kind == "logistic" else None)
            return self
        X_fit, X_cal, y_fit, y_cal = self._split(X, y_coded)
        self.base_estimator_ = self._make_base(categorical).fit(X_fit, y_fit)
        frozen = FrozenEstimator(self.base_estimator_)
        candidates = CALIBRATION_METHODS if method == "auto" else (method,)
        self.calibration_log_loss_ = {}
        if len(candidates) > 1:
            scores = self.base_estimator_.decision_function(X_cal)
            self.calibration_log_loss_ = self._compare_calibrations(scores, y_cal)
            method = min(self.calibration_log_loss_, key=self.calibration_log_loss_.__getitem__)
        self.estimator_ = CalibratedClassifierCV(frozen, method=method).fit(X_cal, y_cal)
        self.calibration_method_ = method
        self.n_iter_ = self._n_iter()
        self.linear_ = None
        return self

    def _compare_calibrations(self, scores: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """Cross-fitted log loss of isotonic and sigmoid (Platt) maps of decision values."""
        folds = StratifiedKFold(3, shuffle=True, random_state=self.random_state)
        held = {name: np.empty(len(y)) for name in CALIBRATION_METHODS}
        for fit_rows, test_rows in folds.split(scores.reshape(-1, 1), y):
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            held["isotonic"][test_rows] = iso.fit(scores[fit_rows], y[fit_rows]).predict(
                scores[test_rows])
            platt = LogisticRegression(C=1e6).fit(scores[fit_rows, None], y[fit_rows])
            held["sigmoid"][test_rows] = platt.predict_proba(scores[test_rows, None])[:, 1]
        return {
            name: float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1]))
            for name, p in held.items()
        }

    def _n_iter(self) -> int:
        base = self.base_estimator_
        if self.kind == "gbm":
            return int(base.n_iter_)
        return int(np.max(base.named_steps["logistic"].n_iter_))

    def _check_params(self) -> None:
        if self.kind not in ("gbm", "logistic"):
            raise ValueError(
                f"The 'kind' parameter of ConversionModel must be 'gbm' or 'logistic'. "
                f"Got {self.kind!r} instead."
            )
        allowed = ("auto", "isotonic", "sigmoid", "none", None)
        if self.calibration not in allowed:
            raise ValueError(
                "The 'calibration' parameter of ConversionModel must be one of "
                f"{allowed}. Got {self.calibration!r} instead."
            )
        if not 0.0 < float(self.calibration_fraction) < 1.0:
            raise ValueError(
                "The 'calibration_fraction' parameter of ConversionModel must be in (0, 1). "
                f"Got {self.calibration_fraction!r} instead."
            )
        if self.calibration_split not in ("ordered", "stratified"):
            raise ValueError(
                "The 'calibration_split' parameter of ConversionModel must be 'ordered' or "
                f"'stratified'. Got {self.calibration_split!r} instead."
            )

    def _requested_calibration(self) -> str:
        if self.calibration is None or self.calibration == "none":
            return "none"
        if self.calibration == "auto":
            return "auto" if self.kind == "gbm" else "none"
        return str(self.calibration)

    def _can_calibrate(self, y: np.ndarray) -> bool:
        n_cal = len(y) * float(self.calibration_fraction)
        share = np.bincount(y, minlength=2) / len(y)
        return bool(n_cal * share.min() >= _MIN_CALIBRATION_PER_CLASS)

    def _split(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
        if self.calibration_split == "ordered":
            cut = len(y) - round(len(y) * float(self.calibration_fraction))
            return X[:cut], X[cut:], y[:cut], y[cut:]
        parts: list[np.ndarray] = train_test_split(
            X,
            y,
            test_size=self.calibration_fraction,
            stratify=y,
            random_state=self.random_state,
        )
        return tuple(parts)

    def _categorical_mask(self, n_features: int) -> np.ndarray:
        mask = np.zeros(n_features, dtype=bool)
        spec = self.categorical_features
        if spec is None:
            return mask
        spec = np.asarray(spec)
        if spec.dtype == bool:
            if spec.shape != (n_features,):
                raise ValueError(
                    "The boolean 'categorical_features' mask must have one entry per feature "
                    f"({n_features}); got shape {spec.shape}."
                )
            return spec.copy()
        if spec.dtype.kind in "US" or spec.dtype == object:
            names = getattr(self, "feature_names_in_", None)
            if names is None:
                raise ValueError(
                    "'categorical_features' names columns but X has no column names; "
                    "pass a DataFrame or integer indices."
                )
            where = {str(n): i for i, n in enumerate(names)}
            unknown = [str(s) for s in spec if str(s) not in where]
            if unknown:
                raise ValueError(f"'categorical_features' names unknown columns: {unknown}.")
            mask[[where[str(s)] for s in spec]] = True
            return mask
        mask[spec.astype(int)] = True
        return mask

    def _make_base(self, categorical: np.ndarray) -> Any:
        if self.kind == "gbm":
            return HistGradientBoostingClassifier(
                learning_rate=self.learning_rate,
                max_iter=self.max_iter,
                max_leaf_nodes=self.max_leaf_nodes,
                max_depth=self.max_depth,
                min_samples_leaf=self.min_samples_leaf,
                l2_regularization=self.l2_regularization,
                n_iter_no_change=self.n_iter_no_change,
                categorical_features=categorical if categorical.any() else None,
                early_stopping="auto",
                random_state=self.random_state,
            )
        numeric = np.flatnonzero(~categorical)
        transformers: list[tuple[str, Any, Any]] = []
        if numeric.size:
            transformers.append(
                (
                    "numeric",
                    make_pipeline(
                        SimpleImputer(strategy="median", add_indicator=True,
                                      keep_empty_features=True),
                        StandardScaler(),
                    ),
                    numeric,
                )
            )
        if categorical.any():
            transformers.append(
                (
                    "categorical",
                    make_pipeline(
                        SimpleImputer(strategy="constant", fill_value=-1.0,
                                      keep_empty_features=True),
                        OneHotEncoder(handle_unknown="ignore"),
                    ),
                    np.flatnonzero(categorical),
                )
            )
        return Pipeline(
            [
                ("columns", ColumnTransformer(transformers)),
                ("logistic", LogisticRegression(C=self.C, max_iter=2000)),
            ]
        )

    # -------------------------------------------------------------- predict
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns ordered as ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, 2)
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan", dtype=np.float64)
        if self.linear_ is not None:
            return self.linear_.predict_proba(X)
        with threadpool_limits(self.n_threads):
            proba: np.ndarray = self.estimator_.predict_proba(X)
        return proba

    def predict_positive(self, X: Any) -> np.ndarray:
        """Probability of the positive class (``classes_[1]``), shape (n_samples,)."""
        return self.predict_proba(X)[:, 1]

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class of each row."""
        proba = self.predict_proba(X)
        return self.classes_[(proba[:, 1] > 0.5).astype(int)]
