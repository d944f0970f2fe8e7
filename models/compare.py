"""Compare a new model with the previous registry version, on the same rows when that is fair.

Figures recorded on two different holdouts are not comparable (another
period, another base rate).  When the previous version's training data ends
before the new holdout starts, the previous model never saw those rows (nor
their outcomes through its partner rates), so both models are scored on the
new holdout and the change is measured on identical rows.  Otherwise the
recorded figures are shown with the reason they are only indicative.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from allocator.errors import InputError
from models.evaluate import METRIC_NAMES, classification_metrics, compare_metrics
from models.registry import ModelRegistry
from models.schema import check_scoring_schema


def _unseen_reason(meta: dict[str, Any], holdout_start: str | None) -> str | None:
    """Why the previous model may have seen the new holdout (``None``: it cannot have)."""
    span = meta.get("data", {}).get("time_range")
    if holdout_start is None or not span:
        return "no timestamps to show the previous version never saw these holdout rows"
    if pd.Timestamp(span[1]) >= pd.Timestamp(holdout_start):
        return (f"the previous version was trained on data up to {span[1]}, "
                f"not before this holdout starts ({holdout_start})")
    return None


def compare_with_previous(
    registry: ModelRegistry,
    holdout: pd.DataFrame,
    y_holdout: np.ndarray,
    partners: pd.DataFrame | None,
    metrics: dict[str, Any],
    data_fingerprint: str,
    holdout_start: str | None,
) -> dict[str, Any] | None:
    """The previous version (promoted, else latest) beside the new one.

    Returns
    -------
    dict or None
        ``version``, ``promoted``, ``metrics`` (as recorded), ``same_data``,
        ``on_this_holdout`` (its figures on the new holdout, or ``None``),
        ``change`` (new − previous, on the same rows when possible) and
        ``comparison`` (which rows, in words).  ``None`` for an empty registry.
    """
    name = registry.promoted() or registry.latest()
    if name is None:
        return None
    meta = registry.metadata(name)
    recorded = meta.get("metrics", {})
    out: dict[str, Any] = {
        "version": name,
        "promoted": name == registry.promoted(),
        "metrics": {k: recorded.get(k) for k in METRIC_NAMES},
        "same_data": meta.get("data", {}).get("fingerprint") == data_fingerprint,
        "on_this_holdout": None,
    }
    reason = _unseen_reason(meta, holdout_start)
    if reason is None:
        model = registry.load(name)
        try:
            check_scoring_schema(model.schema, holdout, partners, model.name)
        except InputError as exc:
            reason = f"its feature schema does not fit this data ({exc.problems[0]})"
        else:
            X = model.features.transform_history(holdout, partners)
            on_holdout = classification_metrics(y_holdout, model.estimator.predict_positive(X))
            out["on_this_holdout"] = {k: on_holdout[k] for k in METRIC_NAMES}
            out["change"] = compare_metrics(metrics, on_holdout)
            out["comparison"] = ("same rows: both versions scored this holdout, which the "
                                 "previous version never saw")
    if reason is not None:
        out["change"] = compare_metrics(metrics, recorded)
        out["comparison"] = f"recorded figures on different holdouts: {reason}"
    return out
