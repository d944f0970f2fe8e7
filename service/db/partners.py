"""Partners: bulk upsert of a validated frame, reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session

from service.db import audit
from service.db.records import partner_values
from service.db.tables import Partner
from service.db.types import utcnow


@dataclass
class UpsertOutcome:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def upsert_partners(
    session: Session, frame: pd.DataFrame, actor: str, actor_role: str | None = None
) -> UpsertOutcome:
    """Insert new partners, update changed ones, leave identical ones alone (caller commits).

    Every creation and change is written to the audit log with the columns changed.

    Parameters
    ----------
    frame : DataFrame
        Partners validated by :func:`service.contract.validate_partners`.
    """
    outcome = UpsertOutcome()
    rows = [partner_values(r) for r in frame.to_dict("records")]
    ids = [r["partner_id"] for r in rows]
    existing: dict[str, Partner] = {}
    for start in range(0, len(ids), 900):  # SQLite limits bound parameters per query
        query = sa.select(Partner).where(Partner.partner_id.in_(ids[start : start + 900]))
        existing.update((p.partner_id, p) for p in session.scalars(query))
    now = utcnow()
    for values in rows:
        pid = values["partner_id"]
        old = existing.get(pid)
        if old is None:
            session.add(Partner(**values, created_at=now, updated_at=now))
            outcome.created.append(pid)
            audit.record(session, actor=actor, actor_role=actor_role, action="partner.created",
                         entity_type="partner", entity_id=pid, partner_id=pid,
                         detail={k: v for k, v in values.items() if k != "partner_id"})
            continue
        changes = {k: v for k, v in values.items() if getattr(old, k) != v}
        if not changes:
            outcome.unchanged.append(pid)
            continue
        before = {k: getattr(old, k) for k in changes}
        for key, value in changes.items():
            setattr(old, key, value)
        old.updated_at = now
        outcome.updated.append(pid)
        audit.record(session, actor=actor, actor_role=actor_role, action="partner.updated",
                     entity_type="partner", entity_id=pid, partner_id=pid,
                     detail={"before": before, "after": changes})
    return outcome


def list_partners(
    session: Session, offset: int = 0, limit: int = 100, tier: str | None = None,
    active: bool | None = None,
) -> tuple[int, Sequence[Partner]]:
    """Partners by id, with the total matching count."""
    where = []
    if tier is not None:
        where.append(Partner.tier == tier)
    if active is not None:
        where.append(Partner.active == active)
    total = session.scalar(sa.select(sa.func.count()).select_from(Partner).where(*where))
    rows = session.scalars(
        sa.select(Partner).where(*where).order_by(Partner.partner_id).offset(offset).limit(limit)
    ).all()
    return int(total or 0), rows


def all_partners(session: Session) -> Sequence[Partner]:
    return session.scalars(sa.select(Partner).order_by(Partner.partner_id)).all()
