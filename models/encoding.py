"""Column kinds and the encoders that turn raw columns into numeric features.

Rules for a column that is not one fairlead knows (an "extra" column):

- bool or numeric dtype, or text whose every value is a number → numeric;
- an integer column whose values are all distinct (≥ 100 rows) → dropped, an identifier;
- text with at most ``max_categories`` distinct values → categorical (integer codes);
- text with more distinct values than half the rows → dropped, an identifier;
- other text → frequency-encoded (share of training rows holding the value);
- timestamps and list cells → dropped; constant columns → dropped;
- every value missing → an error (the caller reports it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

ColumnKind = Literal["numeric", "text", "list", "datetime", "empty"]
ExtraKind = Literal["numeric", "categorical", "frequency", "dropped"]

MAX_CATEGORIES = 50
MIN_CATEGORY_COUNT = 5
ID_DISTINCT_SHARE = 0.5
ID_MIN_ROWS = 100


def _first_present(series: pd.Series) -> object:
    present = series.dropna()
    return present.iloc[0] if len(present) else None


def column_kind(series: pd.Series) -> ColumnKind:
    """What a column holds: numbers, text, lists, timestamps, or nothing."""
    if series.isna().all():
        return "empty"
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    first = _first_present(series)
    if isinstance(first, list | tuple | np.ndarray):
        return "list"
    if isinstance(first, pd.Timestamp):
        return "datetime"
    return "text"


def parses_as_numbers(series: pd.Series) -> bool:
    """Whether every present value of a text column reads as a number."""
    present = series.dropna()
    if present.empty:
        return False
    return bool(pd.to_numeric(present.astype(str), errors="coerce").notna().all())


def as_numbers(series: pd.Series) -> np.ndarray:
    """A numeric, boolean or numeric-text column as float64 (missing → NaN)."""
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return pd.to_numeric(series.astype("float64"), errors="coerce").to_numpy(np.float64)
    return pd.to_numeric(series.astype(str).where(series.notna()), errors="coerce").to_numpy(
        np.float64
    )


def as_text(series: pd.Series) -> pd.Series:
    """A column as ``str`` dtype (missing stays missing)."""
    return series if series.dtype == "str" else series.astype("str")


@dataclass(frozen=True)
class CategoryCoder:
    """Integer codes for a text column: known categories 0..K-1, K for any other, NaN missing."""

    column: str
    categories: tuple[str, ...]

    @classmethod
    def fit(
        cls,
        column: str,
        values: pd.Series,
        max_categories: int = MAX_CATEGORIES,
        min_count: int = MIN_CATEGORY_COUNT,
    ) -> CategoryCoder:
        """Keep the ``max_categories - 1`` most frequent values seen ``min_count`` times or more."""
        counts = as_text(values).value_counts()
        counts = counts[counts >= min_count].iloc[: max_categories - 1]
        return cls(column, tuple(sorted(str(c) for c in counts.index)))

    def encode(self, values: pd.Series) -> np.ndarray:
        """Codes as float64 (HistGradientBoosting reads NaN as missing)."""
        text = as_text(values)
        pos = pd.Index(self.categories, dtype=object).get_indexer(
            pd.Index(text.to_numpy(dtype=object))
        )
        codes = np.where(pos >= 0, pos, len(self.categories)).astype(np.float64)
        codes[text.isna().to_numpy()] = np.nan
        return codes


@dataclass(frozen=True)
class FrequencyCoder:
    """Share of training rows holding each value (unseen values 0, missing NaN)."""

    column: str
    shares: dict[str, float] = field(default_factory=dict)

    @classmethod
    def fit(cls, column: str, values: pd.Series) -> FrequencyCoder:
        shares = as_text(values).value_counts(normalize=True)
        return cls(column, {str(k): float(v) for k, v in shares.items()})

    def encode(self, values: pd.Series) -> np.ndarray:
        text = as_text(values)
        out = text.map(self.shares).astype("float64").fillna(0.0).to_numpy(copy=True)
        out[text.isna().to_numpy()] = np.nan
        return out


@dataclass(frozen=True)
class ExtraRule:
    """How one extra column is used, with the rule in words (kept in the model's metadata)."""

    column: str
    source: Literal["leads", "partners"]
    kind: ExtraKind
    rule: str


def classify_extra(
    column: str,
    series: pd.Series,
    source: Literal["leads", "partners"],
    max_categories: int = MAX_CATEGORIES,
) -> ExtraRule:
    """Decide how an extra column becomes a feature (see the module docstring)."""
    kind = column_kind(series)
    n = len(series)
    distinct = int(series.nunique(dropna=True)) if kind in ("numeric", "text") else 0
    if kind == "list":
        return ExtraRule(column, source, "dropped", "list-valued cells are not used as features")
    if kind == "datetime":
        return ExtraRule(column, source, "dropped", "timestamps are not used as features")
    if kind in ("numeric", "text") and distinct <= 1:
        return ExtraRule(column, source, "dropped", "constant: a single value carries no signal")
    if kind == "numeric" or (kind == "text" and parses_as_numbers(series)):
        numbers = as_numbers(series)
        present = numbers[~np.isnan(numbers)]
        integral = bool(np.all(present == np.round(present)))
        if integral and n >= ID_MIN_ROWS and distinct == n:
            return ExtraRule(
                column, source, "dropped",
                f"looks like an identifier: {distinct} distinct integers in {n} rows",
            )
        return ExtraRule(column, source, "numeric", "numeric feature")
    if distinct <= max_categories:
        return ExtraRule(column, source, "categorical", f"categorical: {distinct} values")
    if distinct > ID_DISTINCT_SHARE * n:
        return ExtraRule(
            column, source, "dropped",
            f"looks like an identifier: {distinct} distinct values in {n} rows "
            f"(more than {ID_DISTINCT_SHARE:.0%})",
        )
    return ExtraRule(
        column, source, "frequency",
        f"high-cardinality text ({distinct} values > {max_categories}): "
        "encoded as the share of training rows holding the value",
    )
