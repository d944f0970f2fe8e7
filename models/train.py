"""Training run: history → features → both estimators → holdout evaluation → registry version.

:func:`train_model` reads the outcome, drops excluded columns, holds out the
latest 20% of rows by time (``assigned_at``, else ``created_at``; a stratified
random 20% when there is no usable timestamp), builds leak-free training
features, fits the calibrated gradient boosting model and the logistic
baseline, keeps the one with the lower held-out log loss and records the
other's figures beside it.  With a registry folder the run is saved as a new
version, compared with the previous one (on the same holdout rows when the
previous version's data ends before them), and the first version of a folder
is promoted.

The saved estimator is the one evaluated (fitted on the training part, not
refitted on all rows), so the recorded metrics describe exactly what scores;
only the partner outcome counts behind the partner-rate feature are
recounted on the whole history before saving, as they are data, not
parameters.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from allocator.errors import InputError, InputProblem
from models.compare import compare_with_previous
from models.encoding import as_text
from models.estimator import ConversionModel
from models.evaluate import (
    METRIC_NAMES,
    classification_metrics,
    metrics_by_group,
    plot_reliability,
)
from models.features import FeatureBuilder
from models.funnel import STAGE_COLUMN, STAGES, stage_levels
from models.outcome import outcome_vector
from models.registry import RELIABILITY, ModelRegistry
from models.scoring import TrainedModel

HOLDOUT_FRACTION = 0.2
MIN_ROWS = 50
MIN_PER_CLASS = 10
TIME_COLUMNS = ("assigned_at", "created_at")
Progress = Callable[[str], None]


@dataclass(frozen=True, eq=False)
class TrainingResult:
    """What a training run produced.

    Attributes
    ----------
    version : str or None
        Registry version saved (``None`` without a registry folder).
    model : TrainedModel
    chosen : str
        ``"gbm"`` or ``"logistic"``: the kind kept (lower held-out log loss).
    metrics : dict
        Held-out figures of the kept model (auc, log_loss, brier, ece, n, ...).
    baseline : dict
        The same figures of the other model, with its ``"model"`` kind.
    by_tier, by_region : dict
        Held-out figures of the kept model per partner tier and per lead region.
    previous : dict or None
        The previous version (promoted, else latest): its recorded metrics, its
        metrics on this holdout when it never saw those rows, and the change
        (see :func:`models.compare.compare_with_previous`).
    promoted : bool
        Whether this version is now the promoted one.
    reliability_png : Path or None
    metadata : dict
        Everything stored in the version's ``metadata.json``.
    """

    version: str | None
    model: TrainedModel
    chosen: str
    metrics: dict[str, Any]
    baseline: dict[str, Any]
    by_tier: dict[str, Any]
    by_region: dict[str, Any]
    previous: dict[str, Any] | None
    promoted: bool
    reliability_png: Path | None
    metadata: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The ``fairlead train --json`` answer."""
        return {
            "version": self.version,
            "model": self.chosen,
            "promoted": self.promoted,
            "metrics": {k: self.metrics[k] for k in METRIC_NAMES},
            "holdout_rows": self.metrics["n"],
            "baseline": {"model": self.baseline["model"],
                         **{k: self.baseline[k] for k in METRIC_NAMES}},
            "by_tier": _headline(self.by_tier),
            "by_region": _headline(self.by_region),
            "previous": self.previous,
            "funnel": self.metadata.get("data", {}).get("funnel"),
            "reliability_png": None if self.reliability_png is None else str(self.reliability_png),
        }


def _headline(groups: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    keep = (*METRIC_NAMES, "n", "observed_rate", "mean_predicted")
    return {g: {k: m[k] for k in keep} for g, m in groups.items()}


def fingerprint(frame: pd.DataFrame) -> str:
    """SHA-256 of a frame's columns, dtypes and values (row order matters)."""
    digest = hashlib.sha256()
    digest.update(repr([(str(c), str(frame[c].dtype)) for c in frame.columns]).encode())
    for col in frame.columns:
        series = frame[col]
        if series.dtype == object or not (
            pd.api.types.is_numeric_dtype(series) or pd.api.types.is_datetime64_any_dtype(series)
        ):
            series = series.astype(object).map(repr)
        digest.update(pd.util.hash_pandas_object(series, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def _apply_exclude(
    history: pd.DataFrame, partners: pd.DataFrame | None, exclude: Iterable[str], target: str
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    names = [c.strip() for c in exclude if c.strip()]
    known = set(history.columns) | (set() if partners is None else set(partners.columns))
    problems = [
        InputProblem("history", None, c, None,
                     "--exclude names a column that is in neither the history nor the partners")
        for c in names if c not in known
    ]
    if target in names:
        problems.append(InputProblem("history", None, target, None,
                                     "--exclude cannot drop the outcome column"))
    if problems:
        raise InputError(problems)
    history = history.drop(columns=[c for c in names if c in history.columns])
    if partners is not None:
        # partners keep their ids: excluding partner_id makes the model lead-only
        partners = partners.drop(
            columns=[c for c in names if c in partners.columns and c != "partner_id"]
        )
    return history, partners


def _time_order(history: pd.DataFrame) -> tuple[str | None, np.ndarray | None, str]:
    """The timestamp column used to order rows, its int64 values, and the split rule in words."""
    for col in TIME_COLUMNS:
        if col not in history.columns:
            continue
        series = history[col]
        if not pd.api.types.is_datetime64_any_dtype(series):
            return None, None, f"stratified random holdout: '{col}' is not a timestamp column"
        if series.isna().any():
            return None, None, (f"stratified random holdout: '{col}' is missing in "
                                f"{int(series.isna().sum())} rows")
        if isinstance(series.dtype, pd.DatetimeTZDtype):
            series = series.dt.tz_convert("UTC").dt.tz_localize(None)
        values = series.to_numpy().astype("datetime64[ns]").astype(np.int64)
        return col, values, f"time-ordered holdout: the latest rows by '{col}'"
    return None, None, "stratified random holdout: no assigned_at or created_at column"


def _check_size(y: np.ndarray) -> None:
    positives = int(y.sum())
    if len(y) < MIN_ROWS or min(positives, len(y) - positives) < MIN_PER_CLASS:
        raise InputError([InputProblem(
            "history", None, None, len(y),
            f"too few rows to train and evaluate: {len(y)} rows with {positives} conversions; "
            f"need at least {MIN_ROWS} rows and {MIN_PER_CLASS} of each outcome",
        )])


def _group_column(
    holdout: pd.DataFrame, partners: pd.DataFrame | None, column: str
) -> np.ndarray | None:
    if column == "region":
        return None if "region" not in holdout.columns else as_text(holdout["region"]).to_numpy()
    if partners is None or "partner_id" not in holdout.columns or column not in partners.columns:
        return None
    lookup = pd.Series(as_text(partners[column]).to_numpy(),
                       index=partners["partner_id"].astype(str).to_numpy())
    return holdout["partner_id"].astype(str).map(lookup).to_numpy(dtype=object)


def _package_version() -> str | None:
    try:
        return package_metadata.version("fairlead")
    except package_metadata.PackageNotFoundError:  # a source tree that was never installed
        return None


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def train_model(
    history: pd.DataFrame,
    partners: pd.DataFrame | None = None,
    *,
    target: str = "converted",
    exclude: Iterable[str] = (),
    model_dir: str | Path | None = None,
    promote: bool | None = None,
    holdout_fraction: float = HOLDOUT_FRACTION,
    random_state: int = 0,
    gbm_params: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> TrainingResult:
    """Train, evaluate on a holdout, and (with ``model_dir``) save a new registry version.

    Parameters
    ----------
    history : DataFrame
        Past assignments: lead columns, optional ``partner_id``, ``assigned_at``,
        the outcome ``target``, extra columns.  Without ``partner_id`` the
        model is lead-only.
    partners : DataFrame, optional
        Partner attributes joined to the history by ``partner_id``.
    target : str, default="converted"
        Outcome column (yes/no, true/false or 1/0).
    exclude : iterable of str
        Columns to leave out (leaky ones), from the history and the partners.
    model_dir : str or Path, optional
        Registry folder; ``None`` trains without saving.
    promote : bool or None
        ``True`` promotes the new version, ``False`` never does, ``None``
        (default) promotes it when the folder has no promoted version yet.
    holdout_fraction : float, default=0.2
    random_state : int, default=0
    gbm_params : dict, optional
        Extra :class:`ConversionModel` parameters for the gradient boosting model.
    progress : callable, optional
        Called with a short message as each stage starts.

    Returns
    -------
    TrainingResult

    Raises
    ------
    InputError
        Missing or malformed outcome, a single outcome class, too few rows, an
        all-missing feature column, an unknown ``--exclude`` column.
    """
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    y_all = outcome_vector(history, target)
    data_hash = fingerprint(history)
    partners_hash = None if partners is None else fingerprint(partners)
    history, partners = _apply_exclude(history.drop(columns=[target]), partners, exclude, target)
    _check_size(y_all)
    stage_all = stage_levels(history, y_all)
    if STAGE_COLUMN in history.columns:
        history = history.drop(columns=[STAGE_COLUMN])
    if stage_all is not None:
        say(f"funnel: partner effects fitted on the '{STAGE_COLUMN}' of "
            f"{int((stage_all >= 0).sum())} rows (an outcome, not a feature)")
    time_col, times, split_rule = _time_order(history)
    if times is not None:
        order = np.argsort(times, kind="stable")
        history, y_all, times = history.iloc[order].reset_index(drop=True), y_all[order], \
            times[order]
        stage_all = None if stage_all is None else stage_all[order]
        cut = len(y_all) - math.ceil(len(y_all) * holdout_fraction)
        train_rows, hold_rows = np.arange(cut), np.arange(cut, len(y_all))
    else:
        history = history.reset_index(drop=True)
        train_rows, hold_rows = train_test_split(
            np.arange(len(y_all)), test_size=holdout_fraction, stratify=y_all,
            random_state=random_state,
        )
        train_rows, hold_rows = np.sort(train_rows), np.sort(hold_rows)
    train, hold = history.iloc[train_rows], history.iloc[hold_rows]
    y_train, y_hold = y_all[train_rows], y_all[hold_rows]

    say(f"features: {len(train)} training rows, {len(hold)} holdout rows ({split_rule})")
    builder = FeatureBuilder(random_state=random_state)
    X_train = builder.fit_transform(train, y_train, partners,
                                    time=None if times is None else times[train_rows],
                                    target=target,
                                    stage=None if stage_all is None else stage_all[train_rows])
    X_hold = builder.transform_history(hold, partners)
    categorical = [builder.schema_.features.index(c) for c in builder.schema_.categorical]
    split = "ordered" if times is not None else "stratified"
    candidates = {
        "gbm": ConversionModel(kind="gbm", categorical_features=categorical or None,
                               calibration_split=split, random_state=random_state,
                               **(gbm_params or {})),
        "logistic": ConversionModel(kind="logistic", categorical_features=categorical or None,
                                    random_state=random_state),
    }
    scores: dict[str, dict[str, Any]] = {}
    held_p: dict[str, np.ndarray] = {}
    for kind, estimator in candidates.items():
        say(f"fitting {kind} on {X_train.shape[0]} rows x {X_train.shape[1]} features")
        estimator.fit(X_train, y_train)
        held_p[kind] = estimator.predict_positive(X_hold)
        scores[kind] = classification_metrics(y_hold, held_p[kind])
    chosen = min(scores, key=lambda k: scores[k]["log_loss"])
    other = "logistic" if chosen == "gbm" else "gbm"
    say(f"kept {chosen}: held-out log loss {scores[chosen]['log_loss']:.4f} "
        f"vs {scores[other]['log_loss']:.4f} for {other}")
    builder.refresh_rates(history, y_all, partners, stage=stage_all)
    model = TrainedModel(builder, candidates[chosen])

    tiers = _group_column(hold, partners, "tier")
    regions = _group_column(hold, partners, "region")
    by_tier = {} if tiers is None else metrics_by_group(y_hold, held_p[chosen], tiers)
    by_region = {} if regions is None else metrics_by_group(y_hold, held_p[chosen], regions)
    registry = None if model_dir is None else ModelRegistry(model_dir)
    time_range = holdout_start = None
    if times is not None:
        stamps = pd.to_datetime(times[[0, -1]], utc=True)
        time_range = [stamps[0].isoformat(), stamps[1].isoformat()]
        holdout_start = pd.Timestamp(times[hold_rows[0]], tz="UTC").isoformat()
    previous = None if registry is None else compare_with_previous(
        registry, hold, y_hold, partners, scores[chosen], data_hash, holdout_start)
    fitted = candidates[chosen]
    metadata: dict[str, Any] = {
        "parent": None if previous is None else previous["version"],
        "fairlead_version": _package_version(),
        "data": {
            "fingerprint": data_hash,
            "partners_fingerprint": partners_hash,
            "rows": len(y_all),
            "conversions": int(y_all.sum()),
            "target": target,
            "funnel": None if stage_all is None else {
                name: int((stage_all == level).sum()) for level, name in enumerate(STAGES)}
            | {"blank": int((stage_all < 0).sum())},
            "excluded": [c for c in exclude if c],
            "time_column": time_col,
            "time_range": time_range,
            "holdout_start": holdout_start,
            "split": split_rule,
            "training_rows": len(train_rows),
            "holdout_rows": len(hold_rows),
        },
        "schema": builder.schema_.to_dict(),
        "model": {
            "kind": chosen,
            "calibration": fitted.calibration_method_,
            "calibration_log_loss": fitted.calibration_log_loss_,
            "n_iter": fitted.n_iter_,
            "params": {k: v for k, v in fitted.get_params().items()
                       if k != "categorical_features"},
        },
        "metrics": scores[chosen],
        "baseline": {"model": other, **scores[other]},
        "by_tier": by_tier,
        "by_region": by_region,
        "previous": previous,
    }
    version, png, promoted = None, None, False
    if registry is not None:
        version, folder = registry.create_version()
        say(f"saving {version} in {registry.root}")
        png = plot_reliability(
            {f"{chosen} (kept)": (y_hold, held_p[chosen]), other: (y_hold, held_p[other])},
            folder / RELIABILITY, title=f"Reliability on the holdout — {version}",
        )
        metadata["training_seconds"] = round(time.perf_counter() - started, 3)
        registry.save(model, _json_ready(metadata), folder, version)
        if promote or (promote is None and registry.promoted() is None):
            registry.promote(version)
            promoted = True
    else:
        metadata["training_seconds"] = round(time.perf_counter() - started, 3)
        model.metadata = _json_ready(metadata)
    return TrainingResult(
        version=version, model=model, chosen=chosen, metrics=scores[chosen],
        baseline={"model": other, **scores[other]}, by_tier=by_tier, by_region=by_region,
        previous=previous, promoted=promoted, reliability_png=png,
        metadata=model.metadata,
    )
