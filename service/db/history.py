"""Outcome history (the model's training data): idempotent bulk ingest, reads."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session

from service.db import audit
from service.db.records import history_values
from service.db.tables import HistoryRecord
from service.db.types import utcnow


def ingest_history(
    session: Session, frame: pd.DataFrame, target: str, actor: str, actor_role: str | None = None
) -> tuple[int, int]:
    """Store history rows not stored before (same content = same row); caller commits.

    Parameters
    ----------
    frame : DataFrame
        Rows validated by :func:`service.contract.validate_history`.
    target : str
        The outcome column in ``frame``; stored as ``converted``.

    Returns
    -------
    (created, unchanged)
    """
    rows = [history_values(r, target) for r in frame.to_dict("records")]
    unique = {r["content_hash"]: r for r in rows}
    hashes = list(unique)
    seen: set[str] = set()
    for start in range(0, len(hashes), 900):
        chunk = hashes[start : start + 900]
        seen.update(session.scalars(
            sa.select(HistoryRecord.content_hash).where(HistoryRecord.content_hash.in_(chunk))
        ))
    new = [r for h, r in unique.items() if h not in seen]
    if new:
        now = utcnow()
        session.execute(sa.insert(HistoryRecord), [{**r, "ingested_at": now} for r in new])
        audit.record(session, actor=actor, actor_role=actor_role, action="history.ingested",
                     entity_type="history", detail={"created": len(new),
                                                    "unchanged": len(rows) - len(new)})
    return len(new), len(rows) - len(new)


def list_history(session: Session, offset: int = 0,
                 limit: int = 100) -> tuple[int, Sequence[HistoryRecord]]:
    total = session.scalar(sa.select(sa.func.count()).select_from(HistoryRecord))
    rows = session.scalars(
        sa.select(HistoryRecord).order_by(HistoryRecord.id).offset(offset).limit(limit)
    ).all()
    return int(total or 0), rows


def all_history(session: Session) -> Sequence[HistoryRecord]:
    return session.scalars(sa.select(HistoryRecord).order_by(HistoryRecord.id)).all()
