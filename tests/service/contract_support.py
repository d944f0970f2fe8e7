"""Helpers for the contract tests: write a table as CSV or Parquet, pick out problems."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from allocator.errors import InputError, InputProblem

FORMATS = ["csv", "parquet"]


def write_table(tmp_path: Path, name: str, columns: dict[str, list[Any]], fmt: str) -> Path:
    """Write text cells (``None`` = blank) as ``name.csv`` or ``name.parquet``.

    Parquet columns are written as text too, so both formats hold the same cells.
    """
    frame = pd.DataFrame({k: pd.Series(v, dtype="str") for k, v in columns.items()})
    path = tmp_path / f"{name}.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def problems_of(excinfo: pytest.ExceptionInfo[InputError]) -> list[InputProblem]:
    return excinfo.value.problems


def find(problems: list[InputProblem], column: str | None, rule: str) -> list[InputProblem]:
    """Problems of ``column`` whose rule contains ``rule``."""
    return [p for p in problems if p.column == column and rule in p.rule]


def line(row: int | None, column: str | None, value: Any, rule: str) -> str:
    """Regex matching one formatted problem line (whatever the file name)."""
    where = "" if row is None else f", row {row}"
    col = "" if column is None else f", column '{column}'"
    shown = "" if value is None else f": value {value!r}"
    return re.escape(f"{where}{col}{shown}: {rule}")
