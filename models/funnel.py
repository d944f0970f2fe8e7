"""The sales funnel: how far a worked lead got, an outcome richer than won or lost.

A history row may carry the furthest stage its lead reached with the partner
(column :data:`STAGE_COLUMN`), one of :data:`STAGES` in funnel order — the
dispositions partners report in the lead lifecycle.  ``won`` is the same
event as ``converted = 1``; a lost lead stops at an earlier stage.  The stage
is an *outcome*: it is never a feature (it would leak the result), but it
tells more about a partner's skill than the rare win alone — a partner that
qualifies and opens opportunities on many leads is likely good at the
vertical even before its wins show it — so the partner effects are fitted on
it (:mod:`models.mixed_effects`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from allocator.errors import InputError, InputProblem

STAGE_COLUMN = "stage"
STAGES = ("accepted", "contacted", "qualified", "opportunity", "won")
WON = STAGES.index("won")
MAX_ROWS_SHOWN = 20


def stage_levels(history: pd.DataFrame, y: np.ndarray, column: str = STAGE_COLUMN,
                 file: str = "history") -> np.ndarray | None:
    """The funnel stage of every row as its level in :data:`STAGES` (``-1`` blank), or ``None``.

    Parameters
    ----------
    history : DataFrame
    y : ndarray of 0/1
        The outcome of each row (converted).
    column : str
        The stage column; ``None`` is returned when the history has none or it is all blank.
    file : str
        Name of the history in messages.

    Raises
    ------
    InputError
        A stage that is not one of :data:`STAGES`, ``won`` on a row that did not
        convert, or an earlier stage on a row that did.
    """
    if column not in history.columns or history[column].isna().all():
        return None
    raw = history[column]
    text = raw.astype(object).where(raw.notna()).map(
        lambda v: str(v).strip().lower(), na_action="ignore")
    text = text.where(text != "")
    level = text.map({s: i for i, s in enumerate(STAGES)}, na_action="ignore")
    unknown = np.flatnonzero((text.notna() & level.isna()).to_numpy())
    levels = level.fillna(-1).to_numpy(dtype=np.int64)
    y = np.asarray(y, dtype=np.int64)
    won_lost = np.flatnonzero((levels == WON) & (y == 0))
    lost_won = np.flatnonzero((levels >= 0) & (levels != WON) & (y == 1))
    checks = (
        (unknown, f"stage must be one of {', '.join(STAGES)} (or blank)"),
        (won_lost, "stage 'won' on a row whose outcome is 0: a won lead converted"),
        (lost_won, "an earlier stage than 'won' on a row whose outcome is 1: a converted "
                   "lead's stage is 'won'"),
    )
    problems: list[InputProblem] = []
    for rows, rule in checks:
        problems += [InputProblem(file, int(r) + 1, column, raw.iloc[r], rule)
                     for r in rows[:MAX_ROWS_SHOWN]]
        if rows.size > MAX_ROWS_SHOWN:
            problems.append(InputProblem(file, None, column, None,
                                         f"... and {rows.size - MAX_ROWS_SHOWN} more rows: "
                                         f"{rule}"))
    if problems:
        raise InputError(problems)
    return levels
