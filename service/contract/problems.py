"""Collecting problems: every bad row is found, a capped number is spelled out per rule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from allocator.errors import InputProblem
from service.contract.cells import python_value

#: Rows spelled out per (column, rule); the rest are counted in one closing problem.
MAX_ROWS_PER_RULE = 20


class Collector:
    """Problems found in one file.

    Parameters
    ----------
    file : str
        File name used in every problem.
    row_numbers : ndarray of int, optional
        1-based file row of each frame position (when the reader skipped
        unreadable lines); default ``position + 1``.
    """

    def __init__(self, file: str, row_numbers: np.ndarray | None = None) -> None:
        self.file = file
        self.row_numbers = row_numbers
        self.problems: list[InputProblem] = []

    def row(self, position: int) -> int:
        """1-based file row of frame position ``position``."""
        if self.row_numbers is None:
            return int(position) + 1
        return int(self.row_numbers[position])

    def file_problem(self, column: str | None, value: Any, rule: str) -> None:
        """A problem of the whole file or column (no row)."""
        self.problems.append(InputProblem(self.file, None, column, value, rule))

    def rows(
        self,
        column: str,
        bad: np.ndarray,
        rule: str,
        value: Callable[[int], Any],
        detail: Callable[[int], str] | None = None,
    ) -> None:
        """Report the rows where ``bad`` is true.

        Parameters
        ----------
        column : str
            Column named in the problems.
        bad : ndarray of bool
            One flag per frame position.
        rule : str
            The rule in words; also the closing line when rows are left out.
        value : callable
            Position -> the offending value as read.
        detail : callable, optional
            Position -> a row-specific rule text (defaults to ``rule``).
        """
        positions = np.flatnonzero(bad)
        if positions.size == 0:
            return
        shown = positions[:MAX_ROWS_PER_RULE]
        for pos in shown.tolist():
            text = detail(pos) if detail is not None else rule
            self.problems.append(
                InputProblem(self.file, self.row(pos), column, python_value(value(pos)), text)
            )
        rest = int(positions.size - shown.size)
        if rest:
            noun = "row" if rest == 1 else "rows"
            self.file_problem(column, None, f"... and {rest} more {noun}: {rule}")

    def cells(
        self,
        raw: pd.Series,
        bad: np.ndarray,
        rule: str,
        detail: Callable[[int], str] | None = None,
    ) -> None:
        """:meth:`rows` for one column, the value taken from ``raw`` as read."""
        self.rows(str(raw.name), bad, rule, raw.iat.__getitem__, detail)
