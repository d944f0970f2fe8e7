"""The logistic baseline's pipeline folded into numpy arrays, for scoring millions of pairs.

scikit-learn's ``ColumnTransformer`` → ``SimpleImputer`` → ``StandardScaler`` /
``OneHotEncoder`` → ``LogisticRegression`` builds a sparse one-hot matrix per
call; on 3M pairs that costs several times the arithmetic.  The fitted
pipeline is a linear function of the raw columns, so it is compiled once into
per-column weights and per-category lookup tables and evaluated directly.
The result equals the pipeline's ``predict_proba`` to floating-point rounding
(checked in the tests).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit
from sklearn.pipeline import Pipeline


@dataclass(frozen=True, eq=False)
class LinearScorer:
    """Logit = intercept + numeric part + missing-indicator part + category lookups."""

    intercept: float
    numeric: np.ndarray
    medians: np.ndarray
    weights: np.ndarray
    indicator_columns: np.ndarray
    indicator_weights: np.ndarray
    categorical: np.ndarray
    categories: tuple[np.ndarray, ...]
    category_weights: tuple[np.ndarray, ...]

    @classmethod
    def from_pipeline(cls, pipe: Pipeline) -> LinearScorer:
        """Compile a fitted pipeline made by ``ConversionModel(kind="logistic")``."""
        columns = pipe.named_steps["columns"]
        logistic = pipe.named_steps["logistic"]
        coef = logistic.coef_.ravel()
        intercept = float(logistic.intercept_[0])
        at = 0
        numeric = np.empty(0, dtype=np.int64)
        medians = weights = indicator_weights = np.empty(0)
        indicator_columns = np.empty(0, dtype=np.int64)
        categorical = np.empty(0, dtype=np.int64)
        categories: tuple[np.ndarray, ...] = ()
        category_weights: tuple[np.ndarray, ...] = ()
        for name, transformer, cols in columns.transformers_:
            if name == "numeric":
                imputer, scaler = transformer.steps[0][1], transformer.steps[1][1]
                numeric = np.asarray(cols, dtype=np.int64)
                k = len(numeric)
                indicator = imputer.indicator_
                indicator_columns = (np.empty(0, dtype=np.int64) if indicator is None
                                     else np.asarray(indicator.features_, dtype=np.int64))
                m = len(indicator_columns)
                w = coef[at : at + k + m] / scaler.scale_
                intercept -= float(np.dot(w, scaler.mean_))
                # keep_empty_features fills a column that was all missing with 0
                medians = np.nan_to_num(np.asarray(imputer.statistics_, dtype=np.float64))
                weights, indicator_weights = w[:k], w[k:]
                at += k + m
            elif name == "categorical":
                encoder = transformer.steps[1][1]
                categorical = np.asarray(cols, dtype=np.int64)
                cats, tables = [], []
                for values in encoder.categories_:
                    cats.append(np.asarray(values, dtype=np.float64))
                    tables.append(coef[at : at + len(values)])
                    at += len(values)
                categories, category_weights = tuple(cats), tuple(tables)
        if at != len(coef):
            raise ValueError(f"Pipeline layout not understood: {at} of {len(coef)} weights read.")
        return cls(intercept, numeric, medians, weights, indicator_columns, indicator_weights,
                   categorical, categories, category_weights)

    def logit(self, X: np.ndarray) -> np.ndarray:
        """Linear predictor of each row of ``X`` (raw columns, NaN missing)."""
        z = np.full(len(X), self.intercept)
        if self.numeric.size:
            values = X[:, self.numeric]
            missing = np.isnan(values)
            values = np.where(missing, self.medians, values)
            z += values @ self.weights
            if self.indicator_columns.size:
                z += missing[:, self.indicator_columns] @ self.indicator_weights
        for col, cats, table in zip(self.categorical, self.categories, self.category_weights,
                                    strict=True):
            values = np.where(np.isnan(X[:, col]), -1.0, X[:, col])
            pos = np.minimum(np.searchsorted(cats, values), len(cats) - 1)
            z += np.where(cats[pos] == values, table[pos], 0.0)
        return z

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Two-column probabilities, as the pipeline's ``predict_proba``."""
        p = expit(self.logit(X))
        return np.column_stack([1.0 - p, p])
