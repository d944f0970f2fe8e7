"""The feature schema of a trained model, and the check that scoring data matches it.

A model records every raw input column it reads (which frame, which kind, the
dtype it was trained on) and the features it builds from them.  Data to score
must carry the same columns with compatible kinds; otherwise scoring is
refused with one problem per missing or changed column, never silently run on
misread data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import pandas as pd

from allocator.errors import InputError, InputProblem
from models.encoding import ExtraRule, column_kind, parses_as_numbers

Source = Literal["leads", "partners"]
InputKind = Literal["numeric", "text", "list"]


@dataclass(frozen=True)
class InputColumn:
    """One raw column a model reads: ``source`` frame, ``name``, ``kind``, training ``dtype``."""

    source: Source
    name: str
    kind: InputKind
    dtype: str


@dataclass(frozen=True)
class DroppedColumn:
    """A column of the training data that is not a feature, and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class FeatureSchema:
    """What a model reads and builds.

    Attributes
    ----------
    inputs : tuple of InputColumn
        Raw columns required at scoring time.
    features : tuple of str
        Feature names, in the order of the model's matrix columns.
    categorical : tuple of str
        The features holding integer category codes.
    extras : tuple of ExtraRule
        How each extra (non-contract) column was used or why it was dropped.
    dropped : tuple of DroppedColumn
        Other training columns left out, with the reason.
    target : str
        The outcome column the model was trained on.
    partner_aware : bool
        ``False`` for a lead-only model (history without ``partner_id``).
    """

    inputs: tuple[InputColumn, ...]
    features: tuple[str, ...]
    categorical: tuple[str, ...]
    extras: tuple[ExtraRule, ...]
    dropped: tuple[DroppedColumn, ...]
    target: str
    partner_aware: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as stored in a version's metadata."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSchema:
        """Inverse of :meth:`to_dict`."""
        return cls(
            inputs=tuple(InputColumn(**c) for c in data["inputs"]),
            features=tuple(data["features"]),
            categorical=tuple(data["categorical"]),
            extras=tuple(ExtraRule(**e) for e in data["extras"]),
            dropped=tuple(DroppedColumn(**d) for d in data["dropped"]),
            target=data["target"],
            partner_aware=bool(data["partner_aware"]),
        )


def _fits(expected: InputKind, series: pd.Series) -> bool:
    got = column_kind(series)
    if got == "empty":
        return True  # every value missing is allowed: the model reads NaN as missing
    if expected == "numeric":
        return got == "numeric" or (got == "text" and parses_as_numbers(series))
    if expected == "list":
        return got in ("list", "text")
    return got == "text"


def check_scoring_schema(
    schema: FeatureSchema,
    leads: pd.DataFrame,
    partners: pd.DataFrame | None,
    model_name: str = "the model",
) -> None:
    """Refuse scoring data whose columns do not match the model's schema.

    Parameters
    ----------
    schema : FeatureSchema
    leads, partners : DataFrame
        The frames to score (``partners`` may be ``None`` for a lead-only model).
    model_name : str
        How to name the model in the message, e.g. ``"model version v0003"``.

    Raises
    ------
    InputError
        One problem per missing column and per column whose kind changed.
    """
    frames = {"leads": leads, "partners": partners}
    problems: list[InputProblem] = []
    for col in schema.inputs:
        frame = frames[col.source]
        if frame is None or col.name not in frame.columns:
            problems.append(
                InputProblem(
                    col.source, None, col.name, None,
                    f"missing: {model_name} was trained with this column "
                    f"({col.kind}, dtype {col.dtype}); score with the same columns or retrain",
                )
            )
        elif not _fits(col.kind, frame[col.name]):
            got = frame[col.name]
            problems.append(
                InputProblem(
                    col.source, None, col.name, str(got.dtype),
                    f"changed: {model_name} was trained on {col.kind} values "
                    f"(dtype {col.dtype}) but this column holds {column_kind(got)} values",
                )
            )
    if problems:
        raise InputError(problems)
