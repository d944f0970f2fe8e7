"""Outcomes to history: a won or lost lead becomes a training row for the next model.

The row has the form ``fairlead train`` reads (``history.csv``): the lead's
columns and extras (never its contact details), ``partner_id``,
``assigned_at`` (when the partner got the offer), ``converted`` (1 won, 0
lost) and ``stage``, the furthest funnel stage the lead reached with the
partner (:data:`models.funnel.STAGES`: ``won`` when converted, else the last
of accepted / contacted / qualified / opportunity before it was lost).  The
stage is an outcome column like ``converted``: ``fairlead train`` reads it as
the funnel outcome, never as a feature.  Nothing else that happened after the
assignment (reasons, times) is written, so no feature leaks the outcome.
Rows are stored in the ``history`` table with the ingested ones (same content,
same row; the stage lives in the row's ``record``), so ``POST /models`` trains
on them and exporting gives one file for both; an ingested row without a
stage exports with a blank one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session

from models.funnel import STAGE_COLUMN, STAGES, WON
from service.db.records import CONTACT_COLUMNS, digest, plain, stored_lead_content
from service.db.tables import Assignment, AuditEntry, HistoryRecord, Lead

#: Columns first in an exported history file, in this order; extras follow.
HEAD_COLUMNS = ("lead_id", "created_at", "region", "country", "vertical", "product",
                "company_size", "deal_size", "intent", "qualification_score",
                "account_owner_partner_id", "effort", "partner_id", "assigned_at",
                "converted", STAGE_COLUMN)
#: The audit actions of the dispositions between accepted and won, by funnel stage.
_REPORTED = {f"disposition.{s}": s for s in STAGES[1:WON]}


def furthest_stage(session: Session, a: Assignment, converted: bool) -> str:
    """The furthest funnel stage ``a``'s lead reached with its partner.

    ``won`` when converted.  Else the furthest of the contacted / qualified /
    opportunity dispositions the partner reported for ``a`` (the audit log
    keeps every one; they may skip a stage, e.g. accepted → qualified), or
    ``accepted`` when it reported none: an accepted or claimed lead lost at once.
    """
    if converted:
        return STAGES[WON]
    actions = session.scalars(sa.select(AuditEntry.action).where(
        AuditEntry.lead_id == a.lead_id, AuditEntry.entity_type == "assignment",
        AuditEntry.entity_id == str(a.id), AuditEntry.action.in_(_REPORTED))).all()
    return max((_REPORTED[x] for x in actions), key=STAGES.index, default=STAGES[0])


def outcome_record(a: Assignment, lead: Lead, converted: bool, stage: str) -> dict[str, Any]:
    """The history row of a won (``converted``) or lost lead worked by ``a``'s partner.

    Raises
    ------
    ValueError
        ``stage`` is not one of :data:`models.funnel.STAGES`, or disagrees with
        ``converted`` (``won`` is the same event as ``converted``).
    """
    if stage not in STAGES or (stage == STAGES[WON]) != converted:
        raise ValueError(f"The stage of a {'won' if converted else 'lost'} lead must be "
                         f"{'won' if converted else 'one of ' + ', '.join(STAGES[:WON])}; "
                         f"got {stage!r} for assignment {a.id}.")
    content = stored_lead_content(lead)
    extras = content.pop("extras", {}) or {}
    record = {k: v for k, v in content.items() if k not in CONTACT_COLUMNS}
    for key, value in extras.items():
        record.setdefault(str(key), value)
    record.update(partner_id=a.partner_id, assigned_at=plain(a.created_at),
                  converted=int(converted))
    # After the extras: a lead's own extra named 'stage' must not pass for the outcome.
    record[STAGE_COLUMN] = stage
    return record


def record_outcome(session: Session, a: Assignment, lead: Lead, *, converted: bool,
                   now: datetime) -> bool:
    """Store the outcome as history (once: the same row twice is one row); caller commits.

    The row carries the furthest stage reached (:func:`furthest_stage`).
    """
    record = outcome_record(a, lead, converted, furthest_stage(session, a, converted))
    content_hash = digest(record)
    if session.scalar(sa.select(HistoryRecord.id).where(
            HistoryRecord.content_hash == content_hash)) is not None:
        return False
    session.add(HistoryRecord(lead_id=lead.lead_id, partner_id=a.partner_id,
                              assigned_at=a.created_at, converted=int(converted),
                              record=record, content_hash=content_hash, ingested_at=now))
    return True


def history_export(rows: Sequence[HistoryRecord]) -> pd.DataFrame:
    """Stored history as one frame: the contract's columns first, extras after, one row each."""
    frame = pd.DataFrame.from_records([r.record for r in rows])
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in HEAD_COLUMNS})
    head = [c for c in HEAD_COLUMNS if c in frame.columns]
    return frame[head + [c for c in frame.columns if c not in head]]


def all_history(session: Session) -> Sequence[HistoryRecord]:
    """Every history row (ingested and lifecycle outcomes), by id."""
    return session.scalars(sa.select(HistoryRecord).order_by(HistoryRecord.id)).all()
