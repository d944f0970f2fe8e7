"""Cell helpers shared by the checks: text view of a column, values as Python scalars."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd


def as_text(raw: pd.Series) -> pd.Series:
    """``raw`` as trimmed ``str`` cells; missing cells stay missing.

    Numbers in a typed column (Parquet, an API frame) become their text
    (``7`` -> ``"7"``) so text columns such as ids accept them.
    """
    text = raw if raw.dtype == "str" else raw.astype("str")
    return text.str.strip()


def blank_mask(text: pd.Series) -> np.ndarray:
    """Cells that are missing or hold only whitespace (``text`` from :func:`as_text`)."""
    return (text.isna() | (text == "")).to_numpy(dtype=bool)


def python_value(value: Any) -> Any:
    """A cell as a plain Python value for a problem report (``None`` when missing)."""
    if isinstance(value, np.ndarray):
        return [python_value(v) for v in value.tolist()]
    if isinstance(value, list | tuple):
        return [python_value(v) for v in value]
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        return python_value(value.item())
    return value
