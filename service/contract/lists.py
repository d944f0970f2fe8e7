"""List cells (``regions``, ``verticals``, ``certifications``).

The rule
--------
A list cell holds items separated by ``;``.  Each item is trimmed of
surrounding whitespace and must be non-empty and made only of letters (any
script), digits, ``_``, ``-``, ``.`` and inner spaces: ``"NA; EMEA"`` is
``("NA", "EMEA")`` and ``"North America"`` is one item.  A blank cell is the
empty list.  Empty items (``"NA;;EMEA"``, a trailing ``;``), other
separators (``,`` ``|``) and brackets or quotes (``"['NA', 'EMEA']"``) are
rejected, not guessed at: they usually mean the file was written with another
convention.  A typed column (Parquet list column, an API frame) may hold
lists or tuples of strings instead; their items follow the same rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from service.contract.cells import as_text, blank_mask

_ITEM = r"[\w.\-]+(?: +[\w.\-]+)*"
# Spaces only (not \s) around ';': pandas then runs the match in pyarrow, not in Python.
SEPARATOR = r" *; *"
CELL_PATTERN = rf"{_ITEM}(?:{SEPARATOR}{_ITEM})*"
_ITEM_CHAR = re.compile(r"[\w.\-]")
_SEPARATOR_HINT = "; separate items with ';'"
_BARE_HINT = "; write the items bare, without brackets or quotes"
_HINTS = {",": _SEPARATOR_HINT, "|": _SEPARATOR_HINT}
_HINTS.update(dict.fromkeys("[](){}'\"", _BARE_HINT))


def list_rule(column: str) -> str:
    """The list rule in words, for ``column``."""
    return (
        f"'{column}' must be ';'-separated items made of letters, digits, "
        "'_', '-', '.' or spaces"
    )


@dataclass(frozen=True)
class ParsedList:
    """A parsed list column: ``values`` (tuples), ``blank`` and ``bad`` cell masks."""

    values: np.ndarray
    blank: np.ndarray
    bad: np.ndarray
    text: pd.Series


def _arrow_sequence_text(raw: pd.Series) -> tuple[pd.Series, np.ndarray] | None:
    """Join list cells with ';' in Arrow; ``None`` when the cells are not all lists of text."""
    try:
        arr = pa.array(raw, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)):
        return None
    if not (pa.types.is_string(arr.type.value_type)
            or pa.types.is_large_string(arr.type.value_type)):
        return None
    flat = pc.list_flatten(arr)
    parents = pc.list_parent_indices(arr).to_numpy()
    item_bad = pc.or_kleene(pc.is_null(flat), pc.match_substring(flat, ";")).fill_null(True)
    bad = np.zeros(len(raw), dtype=bool)
    bad[parents[item_bad.to_numpy(zero_copy_only=False)]] = True
    # A null item makes the joined cell null: item_bad keeps that row reported.
    joined = pd.Series(pc.binary_join(arr, ";").to_pandas(), dtype="str")
    return as_text(joined), bad


def _sequence_text(raw: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Join typed list cells with ';' (cells whose items hold ';' or are not text are bad)."""
    fast = _arrow_sequence_text(raw)
    if fast is not None:
        return fast
    # Mixed cells (lists beside plain strings or numbers) need a look at each cell.
    out: list[object] = []
    bad: list[bool] = []
    for cell in raw.tolist():
        if isinstance(cell, list | tuple | np.ndarray):
            items = list(cell)
            ok = all(isinstance(i, str) and ";" not in i for i in items)
            out.append(";".join(map(str, items)))
            bad.append(not ok)
        else:
            out.append(cell)
            bad.append(False)
    return as_text(pd.Series(out, dtype=object)), np.array(bad, dtype=bool)


def parse_list_column(raw: pd.Series) -> ParsedList:
    """Parse a list column into tuples of str, over the whole column at once.

    The cell rule is checked and the tuples built once per distinct cell text
    (list columns repeat a few region or product combinations), not per row.
    """
    n = len(raw)
    if raw.dtype == "str" or pd.api.types.infer_dtype(raw, skipna=True) in ("string", "empty"):
        text, item_bad = as_text(raw), np.zeros(n, dtype=bool)
    else:
        text, item_bad = _sequence_text(raw)
    blank = blank_mask(text)
    codes, uniques = pd.factorize(text)
    distinct = pd.Series(uniques, dtype="str")
    distinct_ok = distinct.str.fullmatch(CELL_PATTERN).fillna(False).to_numpy(dtype=bool)
    tuples = np.empty(len(distinct) + 1, dtype=object)
    tuples.fill(())
    for k, cell in enumerate(distinct.str.replace(SEPARATOR, ";", regex=True).tolist()):
        if distinct_ok[k]:
            tuples[k] = tuple(cell.split(";"))
    ok = np.append(distinct_ok, False)[codes]  # code -1 (missing) picks the False slot
    bad = (~blank & ~ok) | item_bad
    blank = blank & ~item_bad
    values = tuples[np.where(bad | blank, len(distinct), codes)]
    return ParsedList(values=values, blank=blank, bad=bad, text=text)


def explain_list_cell(cell: object) -> str:
    """Why one list cell breaks the rule, e.g. ``"item 2 is empty"``."""
    text = str(cell).strip()
    if isinstance(cell, list | tuple | np.ndarray):
        for k, item in enumerate(cell, start=1):
            if not isinstance(item, str):
                return f"item {k} is not text"
            if ";" in item:
                return f"item {k} contains ';'"
        text = ";".join(cell)
    for k, item in enumerate(text.split(";"), start=1):
        if not item.strip():
            return f"item {k} is empty"
    for ch in text:
        if ch in "; " or _ITEM_CHAR.match(ch):
            continue
        return f"character {ch!r} is not allowed{_HINTS.get(ch, '')}"
    return "items must be separated by ';' with no other punctuation"
