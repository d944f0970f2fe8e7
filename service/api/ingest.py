"""Frames from request rows and uploaded files, checked by the data contract.

JSON rows and uploaded CSV/Parquet files go through the same
``service.contract`` checks as the CLI's files, so a broken rule reads the
same everywhere.  An upload is written to a private temporary folder under its
own (base)name so the contract's reader picks CSV or Parquet by suffix.
"""

from __future__ import annotations

import dataclasses
import tempfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from fastapi import HTTPException, UploadFile, status

from allocator.errors import InputError, InputProblem, raise_if_problems
from service.api.fields import MAX_BATCH_ROWS
from service.contract import read_table
from service.contract.problems import Collector

MAX_UPLOAD_BYTES = 200 * 1024 * 1024
_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")

Checker = Callable[[pd.DataFrame, str, np.ndarray | None], tuple[pd.DataFrame, list[InputProblem]]]


#: Columns stored as VARCHAR(200): ids and tiers (JSON rows are held to it by the schema).
SHORT_COLUMNS = ("partner_id", "tier", "lead_id", "account_owner_partner_id")
SHORT_LENGTH = 200


def _text_view(column: pd.Series) -> pd.Series:
    def text(cell: object) -> object:
        if isinstance(cell, tuple | list | np.ndarray):
            return ";".join(str(c) for c in cell)
        return cell if isinstance(cell, str) else None

    return column.map(text).astype("str")


def check_storable(frame: pd.DataFrame, file: str) -> None:
    """Raise the problems no contract rule names but a database refuses, all at once.

    Text with NUL characters (PostgreSQL text and JSON cannot hold them), ids and
    tiers longer than 200 characters, more rows than one request may carry.

    Raises
    ------
    InputError
    """
    out = Collector(file)
    if len(frame) > MAX_BATCH_ROWS:
        out.file_problem(None, len(frame), f"a request may carry at most {MAX_BATCH_ROWS} rows; "
                         "split the file")
    for name in frame.columns:
        label = str(name)
        if "\x00" in label:
            out.file_problem(label.replace("\x00", "?"), None,
                             "column names must not contain NUL characters")
            continue
        column = frame[name]
        if not (column.dtype == object or column.dtype == "str"):
            continue
        text = _text_view(column)
        shown = text.str.replace("\x00", "?", regex=False).str.slice(0, 60)
        nul = text.str.contains("\x00", regex=False).fillna(False).to_numpy(dtype=bool)
        # Collector.rows reads the values while this iteration runs.
        out.rows(label, nul, f"'{label}' must not contain NUL characters", shown.iat.__getitem__)
        if label in SHORT_COLUMNS:
            long = (text.str.len() > SHORT_LENGTH).fillna(False).to_numpy(dtype=bool)
            out.rows(label, long, f"'{label}' must be at most {SHORT_LENGTH} characters",
                     shown.iat.__getitem__)
    raise_if_problems(out.problems)


def frame_from_rows(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """A frame from JSON rows, columns in order of first appearance, blanks missing."""
    return pd.DataFrame.from_records(list(rows))


def _refile(problems: Sequence[InputProblem], file: str) -> list[InputProblem]:
    return [dataclasses.replace(p, file=file) for p in problems]


def _upload_name(upload: UploadFile, default: str) -> str:
    name = Path((upload.filename or "").replace("\\", "/")).name.strip() or default
    name = "".join(ch if ch.isprintable() and ch not in "\x00/" else "_" for ch in name)[:200]
    if not name.lower().endswith(_SUFFIXES):
        raise InputError([InputProblem(name, None, None, None, "unsupported file type: upload "
                                       "a .csv (optionally compressed) or .parquet file")])
    return name


def check_upload(
    upload: UploadFile, default_name: str, columns: list[str], check: Checker
) -> pd.DataFrame:
    """Read an uploaded file and check it with ``check``; return the typed frame.

    Raises
    ------
    InputError
        Every reading and contract problem, filed under the upload's name.
    HTTPException
        413 when the file exceeds :data:`MAX_UPLOAD_BYTES`.
    """
    name = _upload_name(upload, default_name)
    data = upload.file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"The file {name!r} is larger than {MAX_UPLOAD_BYTES // 2**20} MiB.",
        )
    with tempfile.TemporaryDirectory(prefix="fairlead-upload-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        try:
            read = read_table(path, columns)
        except InputError as exc:
            raise InputError(_refile(exc.problems, name)) from None
        except (OSError, EOFError, ValueError, zlib.error) as exc:
            # A corrupt compressed file fails inside the decompressor, before any CSV rule.
            raise InputError([InputProblem(name, None, None, None, f"cannot read the file: "
                                           f"{type(exc).__name__}: {exc}")]) from None
        frame, problems = check(read.frame, name, read.row_numbers)
    raise_if_problems([*_refile(read.problems, name), *problems])
    check_storable(frame, name)
    return frame
