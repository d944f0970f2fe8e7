"""Validation of each input table: column checks plus the rules that span columns or files.

``check_*`` return the typed frame and the problems (for loaders that add
their own reading problems); ``validate_*`` raise
:class:`~allocator.errors.InputError` with every problem at once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from allocator.errors import InputProblem, raise_if_problems
from allocator.policy import Policy
from service.contract.columns import DEFAULT_TARGET, LEADS, PAIRS, PARTNERS, history_spec
from service.contract.problems import Collector
from service.contract.validate import first_seen, validate_table

Checked = tuple[pd.DataFrame, list[InputProblem]]


def check_partners(
    df: pd.DataFrame,
    file: str = "partners.csv",
    policy: Policy | None = None,
    row_numbers: np.ndarray | None = None,
) -> Checked:
    """Typed partners frame and its problems (see :func:`validate_partners`)."""
    out = Collector(file, row_numbers)
    frame = validate_table(df, PARTNERS, out)
    names = policy.tier_names if policy is not None else ()
    if names and "tier" in frame.columns:
        tier = frame["tier"]
        bad = (tier.notna() & ~tier.isin(names)).to_numpy(dtype=bool)
        listed = ", ".join(names)
        out.rows(
            "tier",
            bad,
            f"tier is not named in the policy (tiers: {listed})",
            tier.iat.__getitem__,
            lambda p: f"tier {tier.iat[p]!r} is not named in the policy (tiers: {listed})",
        )
    return frame, out.problems


def check_leads(
    df: pd.DataFrame, file: str = "leads.csv", row_numbers: np.ndarray | None = None
) -> Checked:
    """Typed leads frame and its problems (see :func:`validate_leads`)."""
    out = Collector(file, row_numbers)
    return validate_table(df, LEADS, out), out.problems


def check_history(
    df: pd.DataFrame,
    file: str = "history.csv",
    target: str = DEFAULT_TARGET,
    row_numbers: np.ndarray | None = None,
) -> Checked:
    """Typed history frame and its problems (see :func:`validate_history`)."""
    out = Collector(file, row_numbers)
    return validate_table(df, history_spec(target), out), out.problems


def _unknown_ids(
    out: Collector, frame: pd.DataFrame, column: str, ref: pd.DataFrame | None, ref_name: str
) -> None:
    if ref is None or column not in frame.columns or column not in ref.columns:
        return
    ids = frame[column]
    bad = (ids.notna() & ~ids.isin(ref[column])).to_numpy(dtype=bool)
    out.rows(
        column,
        bad,
        f"{column} is not in {ref_name}",
        ids.iat.__getitem__,
        lambda p: f"{column} {ids.iat[p]!r} is not in {ref_name}",
    )


def check_pairs(
    df: pd.DataFrame,
    file: str = "pairs.csv",
    partners: pd.DataFrame | None = None,
    leads: pd.DataFrame | None = None,
    row_numbers: np.ndarray | None = None,
) -> Checked:
    """Typed pairs frame and its problems (see :func:`validate_pairs`)."""
    out = Collector(file, row_numbers)
    frame = validate_table(df, PAIRS, out)
    if {"lead_id", "partner_id"} <= set(frame.columns):
        lead, partner = frame["lead_id"], frame["partner_id"]
        codes, _ = pd.factorize(pd.MultiIndex.from_arrays([lead, partner]))
        codes = np.where((lead.isna() | partner.isna()).to_numpy(dtype=bool), -1, codes)
        first = first_seen(codes)
        dup = (codes >= 0) & (first != np.arange(len(codes)))
        out.rows(
            "lead_id,partner_id",
            dup,
            "duplicate (lead_id, partner_id) pair",
            lambda p: (lead.iat[p], partner.iat[p]),
            lambda p: f"duplicate pair lead_id {lead.iat[p]!r}, partner_id "
            f"{partner.iat[p]!r}: first seen in row {out.row(int(first[p]))}",
        )
    _unknown_ids(out, frame, "lead_id", leads, "leads")
    _unknown_ids(out, frame, "partner_id", partners, "partners")
    return frame, out.problems


def validate_partners(
    df: pd.DataFrame, file: str = "partners.csv", policy: Policy | None = None
) -> pd.DataFrame:
    """Check a partners table and return it typed per the data contract.

    Parameters
    ----------
    df : DataFrame
        The table as read (text cells, or typed cells from Parquet or an API).
    file : str
        Name used in problem reports.
    policy : Policy, optional
        When it names tiers, every ``tier`` must be one of them.

    Returns
    -------
    DataFrame
        partner_id, name, tier (str); regions, verticals, certifications
        (tuples of str); capacity, open_leads (int64); active (bool); extras as read.

    Raises
    ------
    InputError
        With every problem in the table.
    """
    frame, problems = check_partners(df, file, policy)
    raise_if_problems(problems)
    return frame


def validate_leads(df: pd.DataFrame, file: str = "leads.csv") -> pd.DataFrame:
    """Check a leads table and return it typed per the data contract.

    Parameters
    ----------
    df : DataFrame
        The table as read.
    file : str
        Name used in problem reports.

    Returns
    -------
    DataFrame
        lead_id, region and the other text columns (str, missing when blank);
        created_at (datetime64[ns, UTC]); company_size (Int64); deal_size,
        qualification_score (float64, NaN when blank); effort (float64, 1.0
        when blank); extras as read.

    Raises
    ------
    InputError
        With every problem in the table.
    """
    frame, problems = check_leads(df, file)
    raise_if_problems(problems)
    return frame


def validate_history(
    df: pd.DataFrame, file: str = "history.csv", target: str = DEFAULT_TARGET
) -> pd.DataFrame:
    """Check a training history and return it typed.

    Parameters
    ----------
    df : DataFrame
        The table as read.
    file : str
        Name used in problem reports.
    target : str
        Outcome column (``--target``); it keeps its name and becomes 0/1 int64.

    Returns
    -------
    DataFrame
        Lead columns typed as in :func:`validate_leads` where present (none
        required, ids may repeat), partner_id (str), assigned_at
        (datetime64[ns, UTC]), the outcome (int64 0/1), extras as read.

    Raises
    ------
    InputError
        With every problem in the table, including a missing outcome column.
    """
    frame, problems = check_history(df, file, target)
    raise_if_problems(problems)
    return frame


def validate_pairs(
    df: pd.DataFrame,
    file: str = "pairs.csv",
    partners: pd.DataFrame | None = None,
    leads: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Check a table of scored pairs and return it typed.

    Parameters
    ----------
    df : DataFrame
        The table as read.
    file : str
        Name used in problem reports.
    partners, leads : DataFrame, optional
        When given, every ``partner_id`` / ``lead_id`` must appear in them.

    Returns
    -------
    DataFrame
        lead_id, partner_id (str), score (float64, finite), effort (float64 > 0,
        only when the file has it; blank cells 1.0), extras as read.

    Raises
    ------
    InputError
        With every problem in the table.
    """
    frame, problems = check_pairs(df, file, partners, leads)
    raise_if_problems(problems)
    return frame
