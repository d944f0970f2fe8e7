"""Held-out evaluation of conversion probabilities: discrimination and calibration.

The optimizer trusts the probabilities, so calibration is measured as much as
ranking: AUC, log loss, Brier score, expected calibration error (ECE) over 10
equal-mass bins, a reliability diagram, and the same figures per group (tier,
region).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

METRIC_NAMES = ("auc", "log_loss", "brier", "ece")
_EPS = 1e-15


def _checked(y: Any, p: Any) -> tuple[np.ndarray, np.ndarray]:
    y_arr = np.asarray(y, dtype=np.float64).ravel()
    p_arr = np.asarray(p, dtype=np.float64).ravel()
    if y_arr.shape != p_arr.shape:
        raise ValueError(
            f"y and p must have the same length; got {y_arr.size} outcomes and "
            f"{p_arr.size} probabilities."
        )
    if y_arr.size == 0:
        raise ValueError("Cannot evaluate an empty set of predictions.")
    if not np.isin(y_arr, (0.0, 1.0)).all():
        raise ValueError("Outcomes y must be 0 or 1.")
    if not (np.isfinite(p_arr).all() and (p_arr >= 0).all() and (p_arr <= 1).all()):
        raise ValueError("Probabilities p must be finite and in [0, 1].")
    return y_arr, p_arr


def equal_mass_bins(p: np.ndarray, n_bins: int = 10) -> np.ndarray:
    """Bin number (0..n_bins-1) of each prediction: bins of equal size after sorting by p."""
    order = np.argsort(p, kind="stable")
    bins = np.empty(len(p), dtype=np.int64)
    bins[order] = np.arange(len(p)) * n_bins // len(p)
    return bins


def reliability_table(y: Any, p: Any, n_bins: int = 10) -> pd.DataFrame:
    """Mean prediction and observed rate per equal-mass bin, with a 95% Wilson interval.

    Returns
    -------
    DataFrame
        Columns ``bin, n, mean_predicted, observed, lower, upper``.
    """
    y_arr, p_arr = _checked(y, p)
    bins = equal_mass_bins(p_arr, min(n_bins, len(p_arr)))
    frame = pd.DataFrame({"bin": bins, "y": y_arr, "p": p_arr})
    table = frame.groupby("bin").agg(n=("y", "size"), mean_predicted=("p", "mean"),
                                     observed=("y", "mean")).reset_index()
    z = 1.959964
    n, obs = table["n"].to_numpy(float), table["observed"].to_numpy(float)
    centre = (obs + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(obs * (1 - obs) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    table["lower"], table["upper"] = centre - half, centre + half
    return table


def expected_calibration_error(y: Any, p: Any, n_bins: int = 10) -> float:
    """ECE over ``n_bins`` equal-mass bins: Σ (n_b / N) · |mean p_b − observed rate_b|."""
    table = reliability_table(y, p, n_bins)
    weights = table["n"] / table["n"].sum()
    return float((weights * (table["mean_predicted"] - table["observed"]).abs()).sum())


def classification_metrics(y: Any, p: Any) -> dict[str, Any]:
    """AUC, log loss, Brier, ECE, row count, positives, mean prediction, observed rate.

    AUC is ``None`` when ``y`` holds a single class.
    """
    y_arr, p_arr = _checked(y, p)
    both = 0 < y_arr.sum() < len(y_arr)
    return {
        "auc": float(roc_auc_score(y_arr, p_arr)) if both else None,
        "log_loss": float(log_loss(y_arr, np.clip(p_arr, _EPS, 1 - _EPS), labels=[0, 1])),
        "brier": float(brier_score_loss(y_arr, p_arr, pos_label=1)),
        "ece": expected_calibration_error(y_arr, p_arr),
        "n": len(y_arr),
        "positives": int(y_arr.sum()),
        "mean_predicted": float(p_arr.mean()),
        "observed_rate": float(y_arr.mean()),
    }


def metrics_by_group(y: Any, p: Any, groups: Any, min_rows: int = 1) -> dict[str, dict[str, Any]]:
    """:func:`classification_metrics` per group value (missing values: group ``"(missing)"``)."""
    y_arr, p_arr = _checked(y, p)
    keys = pd.Series(np.asarray(groups, dtype=object)).fillna("(missing)").astype(str).to_numpy()
    out: dict[str, dict[str, Any]] = {}
    for key in sorted(set(keys)):
        rows = keys == key
        if rows.sum() >= min_rows:
            out[key] = classification_metrics(y_arr[rows], p_arr[rows])
    return out


def compare_metrics(current: dict[str, Any], previous: dict[str, Any]) -> dict[str, float | None]:
    """``current − previous`` for AUC, log loss, Brier and ECE (``None`` when either lacks it)."""
    out: dict[str, float | None] = {}
    for name in METRIC_NAMES:
        a, b = current.get(name), previous.get(name)
        ok = isinstance(a, int | float) and isinstance(b, int | float)
        out[name] = float(a) - float(b) if ok else None  # type: ignore[arg-type]
    return out


def plot_reliability(
    curves: dict[str, tuple[Any, Any]],
    path: str | Path,
    title: str = "Reliability on the holdout",
    n_bins: int = 10,
) -> Path:
    """Write a reliability diagram (PNG) of one or more models.

    Parameters
    ----------
    curves : dict of str to (y, p)
        Label → outcomes and predicted probabilities.
    path : str or Path
        PNG file to write.
    title : str
    n_bins : int
        Equal-mass bins per curve.

    Returns
    -------
    Path
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, hist) = plt.subplots(
        2, 1, figsize=(6, 7), height_ratios=(3, 1), sharex=True, constrained_layout=True
    )
    top = 0.0
    for label, (y, p) in curves.items():
        table = reliability_table(y, p, n_bins)
        ece = expected_calibration_error(y, p, n_bins)
        x, obs = table["mean_predicted"], table["observed"]
        # Wilson bounds equal the rate at 0 and 1 up to rounding: clip the tiny negatives
        yerr = np.clip([obs - table["lower"], table["upper"] - obs], 0, None)
        ax.errorbar(x, obs, yerr=yerr, marker="o",
                    capsize=3, label=f"{label} (ECE {ece:.3f})")
        hist.hist(np.asarray(p, dtype=float), bins=40, histtype="step", label=label)
        top = max(top, float(table["upper"].max()), float(x.max()))
    top = min(1.0, max(0.05, top * 1.1))
    ax.plot([0, top], [0, top], color="grey", linestyle="--", linewidth=1, label="perfect")
    ax.set(xlim=(0, top), ylim=(0, top), ylabel="observed conversion rate", title=title)
    ax.legend(loc="upper left")
    hist.set(xlabel="predicted probability", ylabel="pairs")
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def finite_or_none(value: Any) -> Any:
    """``None`` for NaN or infinity (JSON has neither), the value otherwise."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
