"""Vectorized checks of one table against its :class:`~service.contract.columns.TableSpec`.

Each check runs over a whole column with pandas/numpy operations; Python
loops only format the (capped) problem messages.  Every column is checked and
every problem collected before anything is raised.
"""

from __future__ import annotations

import difflib

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from service.contract.cells import as_text, blank_mask
from service.contract.columns import FALSE_WORDS, TRUE_WORDS, ColumnSpec, TableSpec
from service.contract.lists import explain_list_cell, list_rule, parse_list_column
from service.contract.problems import Collector

# A timestamp in ISO-8601 extended form: a date, optionally a time and a UTC offset.
ISO_8601 = (
    r"\d{4}-\d{2}-\d{2}"
    r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?"
)
NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_NON_FINITE = r"[+-]?(?:nan|inf|infinity)"
_INT_LIMIT = 2.0**53  # above this a float no longer holds every integer exactly
_TIME_MIN = pd.Timestamp.min.tz_localize("UTC")
_TIME_MAX = pd.Timestamp.max.tz_localize("UTC")


def blank_rule(name: str) -> str:
    return f"'{name}' is required but the cell is blank"


def first_seen(codes: np.ndarray) -> np.ndarray:
    """For each row, the position of the first row with the same code (-1 for code -1).

    ``codes`` must come from :func:`pandas.factorize` (codes numbered in order
    of first appearance).
    """
    first = np.full(len(codes), -1, dtype=np.int64)
    if len(codes) == 0:
        return first
    uniq, index = np.unique(codes, return_index=True)
    lookup = np.full(int(uniq.max()) + 1 if uniq.max() >= 0 else 0, -1, dtype=np.int64)
    keep = uniq >= 0
    lookup[uniq[keep]] = index[keep]
    seen = codes >= 0
    first[seen] = lookup[codes[seen]]
    return first


def _parse_floats(text: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Text to float64: ``(values, spelled_non_finite)``.

    A number is written in plain decimal or exponent form (``12``, ``-0.5``,
    ``1e3``); ``nan``/``inf``/``infinity`` in any case are flagged as spelled
    non-finite values; anything else (and a missing cell) is NaN.  Done in
    Arrow (RE2, then a cast of the matching cells) so a column full of bad
    cells costs no more than a clean one.
    """
    arr = pa.array(text, type=pa.string(), from_pandas=True)
    is_number = pc.match_substring_regex(arr, f"^{NUMBER}$")
    numbers = pc.if_else(is_number, arr, pa.scalar(None, type=pa.string()))
    values = np.asarray(pc.cast(numbers, pa.float64()).to_numpy(zero_copy_only=False),
                        dtype=np.float64)
    if pc.all(pc.or_kleene(is_number, pc.is_null(arr))).as_py():
        return values, np.zeros(len(values), dtype=bool)  # clean column: nothing spelled
    spelled = pc.match_substring_regex(arr, f"^{_NON_FINITE}$", ignore_case=True)
    return values, np.asarray(spelled.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def _numbers(raw: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Parse numbers: ``(values, blank, not_a_number, non_finite)``, one entry per row."""
    n = len(raw)
    if pd.api.types.is_bool_dtype(raw.dtype):
        blank = raw.isna().to_numpy(dtype=bool)
        return np.full(n, np.nan), blank, ~blank, np.zeros(n, dtype=bool)
    if pd.api.types.is_numeric_dtype(raw.dtype):
        values = raw.to_numpy(dtype=np.float64, na_value=np.nan)
        return values, np.isnan(values), np.zeros(n, dtype=bool), np.isinf(values)
    text = as_text(raw)
    blank = blank_mask(text)
    values, spelled = _parse_floats(text.where(~blank))
    failed = ~blank & np.isnan(values) & ~spelled
    return values, blank, failed, (~blank & spelled) | np.isinf(values)


def _range_bad(values: np.ndarray, ok: np.ndarray, spec: ColumnSpec) -> np.ndarray:
    bad = np.zeros(len(values), dtype=bool)
    with np.errstate(invalid="ignore"):
        if spec.low is not None:
            bad |= (values <= spec.low) if spec.low_open else (values < spec.low)
        if spec.high is not None:
            bad |= values > spec.high
    return bad & ok


def _check_required(raw: pd.Series, blank: np.ndarray, spec: ColumnSpec, out: Collector) -> None:
    if spec.required:
        out.cells(raw, blank, blank_rule(spec.name))


def check_text(raw: pd.Series, spec: ColumnSpec, out: Collector) -> pd.Series:
    """Text column: trimmed ``str``, blank cells missing; choices and uniqueness checked."""
    text = as_text(raw)
    blank = blank_mask(text)
    _check_required(raw, blank, spec, out)
    if spec.choices:
        bad = ~blank & ~text.isin(spec.choices).to_numpy(dtype=bool)
        choices = ", ".join(repr(c) for c in spec.choices)
        out.cells(raw, bad, f"'{spec.name}' must be one of {choices}")
    result = text.where(~blank)
    if spec.unique:
        codes, _ = pd.factorize(result)
        first = first_seen(codes)
        dup = (codes >= 0) & (first != np.arange(len(codes)))
        out.cells(
            raw,
            dup,
            f"duplicate {spec.name}",
            lambda p: f"duplicate {spec.name} {result.iat[p]!r}: first seen in row "
            f"{out.row(int(first[p]))}",
        )
    return result


def check_number(raw: pd.Series, spec: ColumnSpec, out: Collector) -> pd.Series:
    """Integer or float column, range checked; blanks take the default (or stay missing)."""
    values, blank, not_number, non_finite = _numbers(raw)
    if spec.required and spec.kind == "float" and pd.api.types.is_float_dtype(raw.dtype):
        out.cells(raw, blank, blank_rule(spec.name) + " (or NaN)")
    else:
        _check_required(raw, blank, spec, out)
    if spec.kind == "float":
        out.cells(raw, not_number, f"'{spec.name}' must be a number")
        out.cells(raw, non_finite, f"'{spec.name}' must be a finite number (not NaN or infinity)")
        type_bad = not_number | non_finite
    else:
        with np.errstate(invalid="ignore"):
            fractional = ~blank & ~not_number & ~non_finite & (values != np.floor(values))
        type_bad = not_number | non_finite | fractional
        out.cells(raw, type_bad, f"'{spec.name}' must be an integer")
        too_big = ~blank & ~type_bad & (np.abs(values) >= _INT_LIMIT)
        out.cells(raw, too_big, f"'{spec.name}' must be smaller than 2^53 in magnitude")
        type_bad = type_bad | too_big
    if spec.low is not None or spec.high is not None:
        out.cells(raw, _range_bad(values, ~blank & ~type_bad, spec), spec.range_rule())
    if spec.kind == "float":
        if spec.default is not None:
            values = np.where(blank, float(spec.default), values)
        return pd.Series(values, dtype="float64", name=spec.name)
    ints = np.where(blank | type_bad, 0.0, values).astype(np.int64)
    if pd.api.types.is_integer_dtype(raw.dtype) and not blank.any():
        ints = raw.to_numpy(dtype=np.int64)  # exact even beyond float precision
    if spec.kind == "nullable_int":
        return pd.Series(pd.arrays.IntegerArray(ints, blank), name=spec.name)
    if spec.default is not None:
        ints = np.where(blank, int(spec.default), ints)
    return pd.Series(ints, dtype="int64", name=spec.name)


def _truth(raw: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse yes/no-like cells: ``(is_true, blank, bad)``."""
    if pd.api.types.is_bool_dtype(raw.dtype):
        blank = raw.isna().to_numpy(dtype=bool)
        is_true = raw.fillna(False).to_numpy(dtype=bool)
        return is_true, blank, np.zeros(len(raw), dtype=bool)
    if pd.api.types.is_numeric_dtype(raw.dtype):
        values = raw.to_numpy(dtype=np.float64, na_value=np.nan)
        blank = np.isnan(values)
        return values == 1, blank, ~blank & (values != 0) & (values != 1)
    words = as_text(raw).str.lower()
    blank = blank_mask(words)
    is_true = words.isin(TRUE_WORDS).to_numpy(dtype=bool)
    is_false = words.isin(FALSE_WORDS).to_numpy(dtype=bool)
    return is_true, blank, ~blank & ~is_true & ~is_false


def check_bool(raw: pd.Series, spec: ColumnSpec, out: Collector) -> pd.Series:
    """``active``-style flag (true/false, yes/no, 1/0, any case); blanks take the default."""
    is_true, blank, bad = _truth(raw)
    _check_required(raw, blank, spec, out)
    out.cells(raw, bad, f"'{spec.name}' must be true/false, yes/no or 1/0")
    if spec.default is not None:
        is_true = np.where(blank, bool(spec.default), is_true)
    return pd.Series(is_true, dtype=bool, name=spec.name)


def check_outcome(raw: pd.Series, spec: ColumnSpec, out: Collector) -> pd.Series:
    """Outcome column: yes/no, true/false, 1/0 (any case) as 0/1 int64."""
    is_true, blank, bad = _truth(raw)
    _check_required(raw, blank, spec, out)
    out.cells(raw, bad, f"outcome '{spec.name}' must be yes/no, true/false or 1/0")
    return pd.Series(is_true.astype(np.int64), name=spec.name)


def check_datetime(raw: pd.Series, spec: ColumnSpec, out: Collector) -> pd.Series:
    """ISO-8601 timestamps as ``datetime64[ns, UTC]`` (naive times are taken as UTC)."""
    rule = f"'{spec.name}' must be an ISO-8601 timestamp such as 2024-05-01 or 2024-05-01T09:30:00Z"
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        parsed = raw.dt.tz_convert("UTC")
        blank = raw.isna().to_numpy(dtype=bool)
        bad = np.zeros(len(raw), dtype=bool)
    elif pd.api.types.is_datetime64_dtype(raw.dtype):
        parsed = raw.dt.tz_localize("UTC")
        blank = raw.isna().to_numpy(dtype=bool)
        bad = np.zeros(len(raw), dtype=bool)
    elif raw.dtype == "str" or raw.dtype == object:
        text = as_text(raw)
        blank = blank_mask(text)
        iso = text.str.fullmatch(ISO_8601).fillna(False).to_numpy(dtype=bool)
        parsed = pd.to_datetime(text.where(iso), format="ISO8601", utc=True, errors="coerce")
        bad = ~blank & (~iso | parsed.isna().to_numpy(dtype=bool))
    else:
        blank = raw.isna().to_numpy(dtype=bool)
        parsed = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
        bad = ~blank
    _check_required(raw, blank, spec, out)
    out.cells(raw, bad, rule)
    outside = ((parsed < _TIME_MIN) | (parsed > _TIME_MAX)).to_numpy(dtype=bool)
    out.cells(raw, outside, f"'{spec.name}' must be between 1677-09-22 and 2262-04-11")
    return parsed.where(~outside).astype("datetime64[ns, UTC]").rename(spec.name)


def check_list(raw: pd.Series, spec: ColumnSpec, out: Collector) -> pd.Series:
    """``;``-separated list column as tuples of str (see :mod:`service.contract.lists`)."""
    parsed = parse_list_column(raw)
    _check_required(raw, parsed.blank, spec, out)
    rule = list_rule(spec.name)
    out.cells(raw, parsed.bad, rule, lambda p: f"{rule}: {explain_list_cell(raw.iat[p])}")
    return pd.Series(parsed.values, dtype=object, name=spec.name)


_CHECKS = {
    "str": check_text,
    "int": check_number,
    "nullable_int": check_number,
    "float": check_number,
    "bool": check_bool,
    "outcome": check_outcome,
    "datetime": check_datetime,
    "list": check_list,
}


def _default_column(spec: ColumnSpec, n: int) -> pd.Series:
    if spec.kind == "list":
        cells = np.empty(n, dtype=object)
        cells.fill(())
        return pd.Series(cells, dtype=object, name=spec.name)
    dtype = {"int": np.int64, "float": np.float64, "bool": np.bool_}[spec.kind]
    return pd.Series(np.full(n, spec.default, dtype=dtype), name=spec.name)


def _missing_rule(spec: ColumnSpec, frame: pd.DataFrame, known: set[str]) -> str:
    what = "outcome column" if spec.kind == "outcome" else "required column"
    others = [str(c) for c in frame.columns if c not in known]
    close = difflib.get_close_matches(spec.name, others, n=1, cutoff=0.6)
    if not close:
        lowered = {c.strip().lower(): c for c in others}
        close = [lowered[spec.name]] if spec.name in lowered else []
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"{what} '{spec.name}' is missing{hint}"


def validate_table(df: pd.DataFrame, spec: TableSpec, out: Collector) -> pd.DataFrame:
    """Check every known column of ``df`` and return the typed frame.

    Problems go to ``out``; nothing is raised here.  Extra columns are kept
    as read, rows keep their order and count, the index becomes 0..n-1.
    """
    frame = df.reset_index(drop=True)
    labels = pd.Index(frame.columns)
    for name in labels[labels.duplicated()].unique():
        count = int((labels == name).sum())
        out.file_problem(str(name), None, f"column '{name}' appears {count} times in the header")
    frame = frame.loc[:, ~labels.duplicated()]
    known = {c.name for c in spec.columns}
    typed: dict[str, pd.Series] = {}
    for col in spec.columns:
        if col.name in frame.columns:
            typed[col.name] = _CHECKS[col.kind](frame[col.name], col, out)
        elif col.required:
            out.file_problem(col.name, None, _missing_rule(col, frame, known))
        elif col.add_if_absent:
            typed[col.name] = _default_column(col, len(frame))
    return frame.assign(**typed)
