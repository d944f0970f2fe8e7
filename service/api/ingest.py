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
from service.contract import read_table

MAX_UPLOAD_BYTES = 200 * 1024 * 1024
_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")

Checker = Callable[[pd.DataFrame, str, np.ndarray | None], tuple[pd.DataFrame, list[InputProblem]]]


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
    return frame
