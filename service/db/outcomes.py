"""Outcomes to history: a won or lost lead becomes a training row for the next model.

The row has the form ``fairlead train`` reads (``history.csv``): the lead's
columns and extras (never its contact details), ``partner_id``,
``assigned_at`` (when the partner got the offer) and ``converted`` (1 won, 0
lost).  Nothing that happened after the assignment (reasons, dispositions,
times) is written, so no column leaks the outcome.  Rows are stored in the
``history`` table with the ingested ones (same content, same row), so
``POST /models`` trains on them and exporting gives one file for both.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session

from service.db.records import CONTACT_COLUMNS, digest, plain, stored_lead_content
from service.db.tables import Assignment, HistoryRecord, Lead

#: Columns first in an exported history file, in this order; extras follow.
HEAD_COLUMNS = ("lead_id", "created_at", "region", "country", "vertical", "product",
                "company_size", "deal_size", "intent", "qualification_score",
                "account_owner_partner_id", "effort", "partner_id", "assigned_at",
                "converted")


def outcome_record(a: Assignment, lead: Lead, converted: bool) -> dict[str, Any]:
    """The history row of a won (``converted``) or lost lead worked by ``a``'s partner."""
    content = stored_lead_content(lead)
    extras = content.pop("extras", {}) or {}
    record = {k: v for k, v in content.items() if k not in CONTACT_COLUMNS}
    for key, value in extras.items():
        record.setdefault(str(key), value)
    record.update(partner_id=a.partner_id, assigned_at=plain(a.created_at),
                  converted=int(converted))
    return record


def record_outcome(session: Session, a: Assignment, lead: Lead, *, converted: bool,
                   now: datetime) -> bool:
    """Store the outcome as history (once: the same row twice is one row); caller commits."""
    record = outcome_record(a, lead, converted)
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
