"""Reading input files (CSV or Parquet, chosen by suffix) and loading them validated.

CSV files are read as UTF-8 (a byte-order mark is allowed).  Known text, list
and timestamp columns are read as text (``007`` stays ``007``); numbers and
flags are inferred (fast), and a column with any cell that is not a number
stays text.  When a file has problems it is read again with every known
column as text, so each problem shows the value exactly as written.  Only blank cells are
missing (``"NA"`` is a region code, not a missing value).  Rows whose field
count differs from the header are reported with their row number and the
rest of the file is still checked, with the other rows keeping their own
numbers.
"""

from __future__ import annotations

import errno
import os
import re
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from allocator.errors import InputError, InputProblem, raise_if_problems
from allocator.policy import Policy
from service.contract.columns import (
    DEFAULT_TARGET,
    LEADS,
    PAIRS,
    PARTNERS,
    TableSpec,
    history_spec,
)
from service.contract.tables import check_history, check_leads, check_pairs, check_partners

CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.zip", ".csv.bz2", ".csv.xz")
PARQUET_SUFFIXES = (".parquet", ".pq")
_SKIPPED = re.compile(r"Skipping line (\d+): expected (\d+) fields, saw (\d+)")


@dataclass(frozen=True)
class ReadTable:
    """A file as read: the frame, reading problems, and each row's 1-based number."""

    frame: pd.DataFrame
    file: str
    problems: list[InputProblem]
    row_numbers: np.ndarray | None


def _csv(path: Path, text_columns: list[str], **kw: object) -> pd.DataFrame:
    return pd.read_csv(  # type: ignore[call-overload, no-any-return]
        path,
        dtype=dict.fromkeys(text_columns, "str"),
        encoding="utf-8-sig",
        keep_default_na=False,
        na_values=[""],
        **kw,
    )


def _read_csv(path: Path, file: str, text_columns: list[str]) -> ReadTable:
    problems: list[InputProblem] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            # Forcing text is slow in pandas; force it only where inference did
            # not already give text (ids such as 007, all-blank columns).
            frame = _csv(path, [], on_bad_lines="warn")
            retype = [c for c in text_columns if c in frame and frame[c].dtype != "str"]
            if retype:
                frame = _csv(path, retype, on_bad_lines="skip")
        header = pd.read_csv(
            path, header=None, nrows=1, dtype="str", encoding="utf-8-sig", keep_default_na=False
        ).iloc[0]
    except pd.errors.EmptyDataError:
        raise InputError([InputProblem(file, None, None, None, "the file is empty: a header "
                                       "row is required")]) from None
    except UnicodeDecodeError as exc:
        raise InputError([InputProblem(file, None, None, None, f"the file is not UTF-8 text "
                                       f"({exc.reason} at byte {exc.start})")]) from None
    except pd.errors.ParserError as exc:
        raise InputError([InputProblem(file, None, None, None, f"cannot parse the CSV: "
                                       f"{str(exc).strip()}")]) from None
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        # A corrupt compressed file fails inside the decompressor, before any CSV rule.
        raise InputError([InputProblem(file, None, None, None, f"cannot read the file: "
                                       f"{type(exc).__name__}: {exc}")]) from None
    skipped: list[int] = []
    for warning in caught:
        for line, expected, saw in _SKIPPED.findall(str(warning.message)):
            row = int(line) - 1  # pandas counts the header as line 1
            skipped.append(row)
            problems.append(InputProblem(file, row, None, None, f"the row has {saw} fields but "
                                         f"the header has {expected}"))
    for name, count in header.value_counts().items():
        if count > 1:
            problems.append(InputProblem(file, None, str(name), None,
                                         f"column '{name}' appears {count} times in the header"))
    row_numbers = None
    if skipped:
        all_rows = np.arange(1, len(frame) + len(skipped) + 1)
        row_numbers = np.setdiff1d(all_rows, np.array(skipped), assume_unique=True)
    return ReadTable(frame, file, problems, row_numbers)


def read_table(path: str | os.PathLike[str], text_columns: list[str] | None = None) -> ReadTable:
    """Read a CSV or Parquet file (chosen by suffix) without validating it.

    Parameters
    ----------
    path : path-like
        ``.csv`` (optionally compressed, e.g. ``.csv.gz``), ``.parquet`` or ``.pq``.
    text_columns : list of str, optional
        CSV columns to read as text (the known columns); others are inferred.

    Raises
    ------
    FileNotFoundError
        When there is no such file.
    InputError
        When the file cannot be read at all (wrong type, empty, not UTF-8, not Parquet).
    """
    p = Path(path)
    file = str(path)
    if not p.is_file():
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), file)
    name = p.name.lower()
    if name.endswith(CSV_SUFFIXES):
        return _read_csv(p, file, text_columns or [])
    if name.endswith(PARQUET_SUFFIXES):
        try:
            frame = pd.read_parquet(p)
        except Exception as exc:  # pyarrow raises several unrelated types for a bad file
            raise InputError([InputProblem(file, None, None, None, f"cannot read the Parquet "
                                           f"file: {exc}")]) from None
        return ReadTable(frame, file, [], None)
    raise InputError([InputProblem(file, None, None, None, f"unsupported file type "
                                   f"'{''.join(p.suffixes) or p.name}': use .csv or .parquet")])


def _load(
    path: str | os.PathLike[str],
    spec: TableSpec,
    check: Callable[[ReadTable], tuple[pd.DataFrame, list[InputProblem]]],
) -> pd.DataFrame:
    read = read_table(path, spec.text_names())
    frame, problems = check(read)
    if problems and Path(path).name.lower().endswith(CSV_SUFFIXES):
        # The fast read let pandas type the numbers; on the (rare) failing path,
        # read every known column as text so problems show values as written.
        read = read_table(path, spec.names())
        frame, problems = check(read)
    raise_if_problems([*read.problems, *problems])
    return frame


def load_partners(path: str | os.PathLike[str], policy: Policy | None = None) -> pd.DataFrame:
    """Read and validate ``partners`` (see :func:`~service.contract.validate_partners`).

    Raises
    ------
    FileNotFoundError, InputError
    """
    return _load(path, PARTNERS,
                 lambda r: check_partners(r.frame, r.file, policy, r.row_numbers))


def load_leads(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and validate ``leads`` (see :func:`~service.contract.validate_leads`).

    Raises
    ------
    FileNotFoundError, InputError
    """
    return _load(path, LEADS, lambda r: check_leads(r.frame, r.file, r.row_numbers))


def load_history(path: str | os.PathLike[str], target: str = DEFAULT_TARGET) -> pd.DataFrame:
    """Read and validate a training history (see :func:`~service.contract.validate_history`).

    Raises
    ------
    FileNotFoundError, InputError
    """
    return _load(path, history_spec(target),
                 lambda r: check_history(r.frame, r.file, target, r.row_numbers))


def load_pairs(
    path: str | os.PathLike[str],
    partners: pd.DataFrame | None = None,
    leads: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Read and validate scored pairs (see :func:`~service.contract.validate_pairs`).

    Raises
    ------
    FileNotFoundError, InputError
    """
    return _load(path, PAIRS,
                 lambda r: check_pairs(r.frame, r.file, partners, leads, r.row_numbers))
