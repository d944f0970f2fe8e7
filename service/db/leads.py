"""Leads: idempotent bulk ingest (by ``lead_id`` and content hash), reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session

from service.db import audit
from service.db.records import changed_fields, lead_content, lead_values, stored_lead_content
from service.db.tables import Assignment, Lead
from service.db.types import utcnow

_CHUNK = 900  # ids per IN (...) query; SQLite limits bound parameters


@dataclass
class IngestOutcome:
    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    conflicts: dict[str, list[str]] = field(default_factory=dict)


def leads_by_id(session: Session, ids: Sequence[str]) -> dict[str, Lead]:
    """Stored leads among ``ids``."""
    found: dict[str, Lead] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        for lead in session.scalars(sa.select(Lead).where(Lead.lead_id.in_(chunk))):
            found[lead.lead_id] = lead
    return found


def ingest_leads(
    session: Session,
    frame: pd.DataFrame,
    actor: str,
    actor_role: str | None = None,
    store_when_conflicting: bool = False,
) -> IngestOutcome:
    """Store new leads; report leads already stored as unchanged or conflicting.

    A lead is immutable once stored: sent again with the same content it is
    ``unchanged``, with other content it is a conflict and is never overwritten.
    When there are conflicts and ``store_when_conflicting`` is false nothing is
    stored; the caller decides (the API answers 409).

    Parameters
    ----------
    frame : DataFrame
        Leads validated by :func:`service.contract.validate_leads`.
    """
    outcome = IngestOutcome()
    contents = [lead_content(r) for r in frame.to_dict("records")]
    stored = leads_by_id(session, [c["lead_id"] for c in contents])
    new_rows = []
    for content in contents:
        lid = content["lead_id"]
        old = stored.get(lid)
        if old is None:
            new_rows.append(lead_values(content))
            outcome.created.append(lid)
            continue
        values = lead_values(content)
        if values["content_hash"] == old.content_hash:
            outcome.unchanged.append(lid)
        else:
            outcome.conflicts[lid] = changed_fields(stored_lead_content(old), content)
    if outcome.conflicts and not store_when_conflicting:
        outcome.created = []
        return outcome
    if new_rows:
        now = utcnow()
        session.execute(sa.insert(Lead), [{**r, "ingested_at": now} for r in new_rows])
        audit.record_many(
            session,
            (
                {"actor": actor, "actor_role": actor_role, "action": "lead.created",
                 "entity_type": "lead", "entity_id": lid, "lead_id": lid}
                for lid in outcome.created
            ),
        )
    return outcome


def list_leads(
    session: Session, offset: int = 0, limit: int = 100, pending: bool | None = None
) -> tuple[int, Sequence[Lead]]:
    """Leads by id; ``pending=True`` keeps those without a live assignment."""
    where = []
    if pending is not None:
        live = sa.select(Assignment.lead_id).where(Assignment.live)
        where.append(Lead.lead_id.not_in(live) if pending else Lead.lead_id.in_(live))
    total = session.scalar(sa.select(sa.func.count()).select_from(Lead).where(*where))
    rows = session.scalars(
        sa.select(Lead).where(*where).order_by(Lead.lead_id).offset(offset).limit(limit)
    ).all()
    return int(total or 0), rows


def pending_leads(session: Session, only: Sequence[str] | None = None) -> Sequence[Lead]:
    """Leads without a live assignment (optionally only those in ``only``), by id."""
    live = sa.select(Assignment.lead_id).where(Assignment.live)
    query = sa.select(Lead).where(Lead.lead_id.not_in(live)).order_by(Lead.lead_id)
    if only is None:
        return session.scalars(query).all()
    out: list[Lead] = []
    for start in range(0, len(only), _CHUNK):
        chunk = list(only[start : start + _CHUNK])
        out.extend(session.scalars(query.where(Lead.lead_id.in_(chunk))))
    return sorted(out, key=lambda lead: lead.lead_id)
