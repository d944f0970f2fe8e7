"""Column specs of the input files (SPEC.md, "Input files"): name, kind, required, default, range.

A :class:`TableSpec` lists the columns fairlead knows for one file; any other
column is kept as read.  The checks themselves live in
:mod:`service.contract.validate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from allocator.policy import INTENTS

Kind = Literal["str", "int", "nullable_int", "float", "bool", "datetime", "list", "outcome"]

TRUE_WORDS = ("true", "yes", "1")
FALSE_WORDS = ("false", "no", "0")


@dataclass(frozen=True)
class ColumnSpec:
    """One known column.

    Attributes
    ----------
    name : str
        Column name in the file header.
    kind : str
        ``"str"``, ``"int"`` (int64), ``"nullable_int"`` (Int64), ``"float"``,
        ``"bool"``, ``"datetime"`` (UTC), ``"list"`` (tuple of str) or
        ``"outcome"`` (yes/no-like, returned as 0/1 int64).
    required : bool
        The column must be present and no cell may be blank.
    default : Any
        Value given to blank cells of an optional column (``None``: stays missing).
    add_if_absent : bool
        An absent optional column is added, filled with ``default``.
    unique : bool
        No two rows may hold the same value.
    low, high : float or None
        Allowed range of a number (inclusive unless ``low_open``).
    low_open : bool
        ``low`` itself is not allowed (``effort > 0``).
    choices : tuple of str
        Allowed values of a text column (case-sensitive); empty means any.
    """

    name: str
    kind: Kind
    required: bool = False
    default: Any = None
    add_if_absent: bool = False
    unique: bool = False
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[str, ...] = ()

    def range_rule(self) -> str:
        """The range rule in words, e.g. ``"'effort' must be > 0"``."""
        if self.low is not None and self.high is not None:
            return f"'{self.name}' must be between {self.low:g} and {self.high:g}"
        if self.low is not None:
            return f"'{self.name}' must be {'>' if self.low_open else '>='} {self.low:g}"
        return f"'{self.name}' must be <= {self.high:g}"


@dataclass(frozen=True)
class TableSpec:
    """The known columns of one input file."""

    name: str
    columns: tuple[ColumnSpec, ...]

    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def text_names(self) -> list[str]:
        """Columns a CSV reader must keep as text (ids like ``007``, lists, timestamps).

        Numbers and flags may be inferred by the reader: a cell that is not a
        number keeps the whole column as text, so no value is lost.
        """
        return [c.name for c in self.columns if c.kind in ("str", "list", "datetime")]

    def column(self, name: str) -> ColumnSpec:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)


def _text(name: str, **kw: Any) -> ColumnSpec:
    return ColumnSpec(name, "str", **kw)


PARTNERS = TableSpec(
    "partners",
    (
        _text("partner_id", required=True, unique=True),
        _text("name"),
        _text("tier", required=True),
        ColumnSpec("regions", "list", required=True),
        ColumnSpec("verticals", "list", default=(), add_if_absent=True),
        ColumnSpec("certifications", "list", default=(), add_if_absent=True),
        ColumnSpec("capacity", "int", required=True, low=0),
        ColumnSpec("open_leads", "int", default=0, add_if_absent=True, low=0),
        ColumnSpec("active", "bool", default=True, add_if_absent=True),
    ),
)

_LEAD_FEATURES = (
    _text("country"),
    _text("vertical"),
    _text("product"),
    ColumnSpec("company_size", "nullable_int", low=0),
    ColumnSpec("deal_size", "float", low=0),
    _text("intent", choices=INTENTS),
    ColumnSpec("qualification_score", "float", low=0, high=100),
    _text("account_owner_partner_id"),
    ColumnSpec("effort", "float", default=1.0, add_if_absent=True, low=0, low_open=True),
    _text("contact_name"),
    _text("contact_email"),
    _text("contact_phone"),
)

LEADS = TableSpec(
    "leads",
    (
        _text("lead_id", required=True, unique=True),
        ColumnSpec("created_at", "datetime", required=True),
        _text("region", required=True),
        *_LEAD_FEATURES,
    ),
)

PAIRS = TableSpec(
    "pairs",
    (
        _text("lead_id", required=True),
        _text("partner_id", required=True),
        ColumnSpec("score", "float", required=True),
        # Absent effort is not added: the lead's own effort then applies.
        ColumnSpec("effort", "float", default=1.0, low=0, low_open=True),
    ),
)

DEFAULT_TARGET = "converted"


def history_spec(target: str = DEFAULT_TARGET) -> TableSpec:
    """Columns of ``history``: lead columns (all optional there), partner, time, outcome.

    A lead may have been assigned more than once (re-routing), so ``lead_id`` is
    not unique in the history.  Only the outcome column is required.
    """
    lead_cols = (
        _text("lead_id"),
        ColumnSpec("created_at", "datetime"),
        _text("region"),
        *(
            ColumnSpec(c.name, c.kind, default=c.default, low=c.low, high=c.high,
                       low_open=c.low_open, choices=c.choices)
            for c in _LEAD_FEATURES
        ),
    )
    known = (*lead_cols, _text("partner_id"), ColumnSpec("assigned_at", "datetime"))
    outcome = ColumnSpec(target, "outcome", required=True)
    return TableSpec("history", (*(c for c in known if c.name != target), outcome))
