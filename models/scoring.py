"""Score the eligible pairs of a round with a trained model, vectorized and in chunks.

Per-lead and per-partner features are computed once (``FeatureBuilder.prepare``),
then each chunk of pairs gathers them by index, adds the pair features and
runs the estimator.  Chunks bound memory: 262k pairs × ~30 features is ~60 MB.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from allocator.errors import InputError, InputProblem
from models.estimator import ConversionModel
from models.features import FeatureBuilder
from models.schema import FeatureSchema, check_scoring_schema

DEFAULT_CHUNK = 262_144


@dataclass(eq=False)
class TrainedModel:
    """What a registry version holds: the fitted features and estimator.

    Attributes
    ----------
    features : FeatureBuilder
        Fitted; its ``schema_`` is the model's feature schema.
    estimator : ConversionModel
        Fitted on the matrices of ``features``.
    version : str or None
        Registry version it was loaded from (``None`` before it is saved).
    metadata : dict
        The version's metadata (metrics, data fingerprint, ...).
    """

    features: FeatureBuilder
    estimator: ConversionModel
    version: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def schema(self) -> FeatureSchema:
        """The feature schema the model was trained with."""
        return self.features.schema_

    @property
    def name(self) -> str:
        """How messages name this model."""
        return f"model version {self.version}" if self.version else "the model"


def _pair_positions(
    pairs: pd.DataFrame, leads: pd.DataFrame, partners: pd.DataFrame | None
) -> tuple[np.ndarray, np.ndarray]:
    """``lead_index`` / ``partner_index`` of each pair, from the columns or from the ids."""
    problems: list[InputProblem] = []
    out: list[np.ndarray] = []
    for index_col, id_col, frame, name in (
        ("lead_index", "lead_id", leads, "leads"),
        ("partner_index", "partner_id", partners, "partners"),
    ):
        if frame is None:  # a lead-only model reads no partner
            out.append(np.zeros(len(pairs), dtype=np.int64))
            continue
        n = len(frame)
        if index_col in pairs.columns:
            pos = pairs[index_col].to_numpy(dtype=np.int64)
        elif id_col in pairs.columns and id_col in frame.columns:
            pos = pd.Index(frame[id_col].astype(str)).get_indexer(
                pd.Index(pairs[id_col].astype(str))
            )
        else:
            problems.append(InputProblem("pairs", None, index_col, None,
                                         f"missing: pairs need {index_col} or {id_col}"))
            continue
        bad = (pos < 0) | (pos >= n)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            problems.append(InputProblem(
                "pairs", first + 1, index_col, int(pos[first]) if pos[first] >= 0 else None,
                f"{int(bad.sum())} pair(s) point outside the {n} rows of {name}",
            ))
        out.append(pos)
    if problems:
        raise InputError(problems)
    return out[0], out[1]


def score_pairs(
    model: TrainedModel,
    pairs: pd.DataFrame,
    leads: pd.DataFrame,
    partners: pd.DataFrame | None,
    chunk_size: int = DEFAULT_CHUNK,
) -> np.ndarray:
    """Conversion probability of every pair.

    Parameters
    ----------
    model : TrainedModel
    pairs : DataFrame
        ``lead_index`` and ``partner_index`` (positions in ``leads`` and
        ``partners``), or ``lead_id`` and ``partner_id``.
    leads, partners : DataFrame
        The round's leads and partners (``partners`` may be ``None`` for a
        lead-only model).
    chunk_size : int, default=262_144
        Pairs scored at once.

    Returns
    -------
    ndarray of float64, shape (len(pairs),)

    Raises
    ------
    InputError
        When ``leads`` or ``partners`` lack a column the model was trained
        with or hold it with another kind, or when pairs point outside the frames.
    """
    check_scoring_schema(model.schema, leads, partners, model.name)
    lead_index, partner_index = _pair_positions(pairs, leads, partners)
    prepared = model.features.prepare(leads, partners)
    out = np.empty(len(pairs), dtype=np.float64)
    chunk_size = max(1, min(chunk_size, len(pairs)))
    # one buffer reused by every chunk: fresh 100 MB arrays per chunk cost page faults
    buffer = np.empty((chunk_size, len(model.schema.features)), dtype=np.float64)
    for start in range(0, len(pairs), chunk_size):
        stop = min(start + chunk_size, len(pairs))
        X = model.features.matrix(prepared, lead_index[start:stop], partner_index[start:stop],
                                  out=buffer[: stop - start])
        out[start:stop] = model.estimator.predict_positive(X)
    return out
