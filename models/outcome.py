"""The outcome column of a training history, read as 0/1 with every problem reported."""

from __future__ import annotations

import numpy as np
import pandas as pd

from allocator.errors import InputError, InputProblem

TRUE_WORDS = frozenset({"1", "true", "yes", "1.0"})
FALSE_WORDS = frozenset({"0", "false", "no", "0.0"})
MAX_ROWS_SHOWN = 20


def outcome_vector(history: pd.DataFrame, target: str = "converted",
                   file: str = "history") -> np.ndarray:
    """The outcome ``target`` of every history row as 0/1 int64.

    Parameters
    ----------
    history : DataFrame
    target : str
        Outcome column: yes/no, true/false or 1/0 (any case), or booleans.
    file : str
        Name of the history in messages.

    Returns
    -------
    ndarray of int64

    Raises
    ------
    InputError
        When the column is missing, a value is blank or not one of the
        accepted words, or only one outcome occurs.
    """
    if target not in history.columns:
        shown = ", ".join(map(str, history.columns[:30]))
        raise InputError([InputProblem(
            file, None, target, None,
            f"the outcome column '{target}' is missing (columns: {shown}); "
            "name the outcome with --target COL",
        )])
    raw = history[target]
    if pd.api.types.is_bool_dtype(raw) and not raw.isna().any():
        y = raw.to_numpy(dtype=np.int64)
    else:
        text = raw.astype(object).where(raw.notna()).map(
            lambda v: str(v).strip().lower(), na_action="ignore"
        )
        is_true = text.isin(TRUE_WORDS).to_numpy()
        is_false = text.isin(FALSE_WORDS).to_numpy()
        bad = np.flatnonzero(~(is_true | is_false))
        if bad.size:
            problems = [
                InputProblem(
                    file, int(r) + 1, target,
                    None if pd.isna(raw.iloc[r]) else raw.iloc[r],
                    f"outcome '{target}' must be yes/no, true/false or 1/0"
                    + (" (blank)" if pd.isna(raw.iloc[r]) else ""),
                )
                for r in bad[:MAX_ROWS_SHOWN]
            ]
            if bad.size > MAX_ROWS_SHOWN:
                problems.append(InputProblem(
                    file, None, target, None,
                    f"... and {bad.size - MAX_ROWS_SHOWN} more rows with other values",
                ))
            raise InputError(problems)
        y = is_true.astype(np.int64)
    positives = int(y.sum())
    if positives in (0, len(y)):
        only = "1 (converted)" if positives else "0 (not converted)"
        raise InputError([InputProblem(
            file, None, target, int(positives > 0) if len(y) else None,
            f"the outcome has only one class: all {len(y)} rows are {only}; "
            "a model needs rows of both outcomes",
        )])
    return y
