"""The append-only audit log: :func:`record` adds, :func:`query` reads; nothing changes a row.

The database backs this up: on both SQLite and PostgreSQL, triggers reject
UPDATE and DELETE on ``audit_log`` (and TRUNCATE on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from service.db.tables import AuditEntry
from service.db.types import utcnow


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str | None = None,
    actor_role: str | None = None,
    round_id: int | None = None,
    lead_id: str | None = None,
    partner_id: str | None = None,
    reason: str | None = None,
    detail: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    """Append one entry (in the caller's transaction, so it commits or rolls back with it)."""
    session.add(
        AuditEntry(
            at=at or utcnow(),
            actor=actor,
            actor_role=actor_role,
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            round_id=round_id,
            lead_id=lead_id,
            partner_id=partner_id,
            reason=reason,
            detail=dict(detail or {}),
        )
    )


def record_many(session: Session, entries: Iterable[Mapping[str, Any]]) -> int:
    """Append many entries in one INSERT; each mapping holds :class:`AuditEntry` columns."""
    now = utcnow()
    rows = [{"at": now, "detail": {}, **e} for e in entries]
    if rows:
        session.execute(sa.insert(AuditEntry), rows)
    return len(rows)


def query(
    session: Session,
    *,
    partner_id: str | None = None,
    lead_id: str | None = None,
    round_id: int | None = None,
    action: str | None = None,
    offset: int = 0,
    limit: int = 100,
) -> tuple[int, Sequence[AuditEntry]]:
    """Entries matching every given filter, oldest first, with the total count."""
    where = []
    if partner_id is not None:
        where.append(AuditEntry.partner_id == partner_id)
    if lead_id is not None:
        where.append(AuditEntry.lead_id == lead_id)
    if round_id is not None:
        where.append(AuditEntry.round_id == round_id)
    if action is not None:
        where.append(AuditEntry.action == action)
    total = session.scalar(sa.select(sa.func.count()).select_from(AuditEntry).where(*where))
    rows = session.scalars(
        sa.select(AuditEntry).where(*where).order_by(AuditEntry.id).offset(offset).limit(limit)
    ).all()
    return int(total or 0), rows
