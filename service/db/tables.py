"""The service's tables as SQLAlchemy 2 declarative models.

The schema itself is created and changed only by the Alembic migrations in
``service/migrations``; these classes must match them (a test compares the
two).  Two invariants live in the database rather than in Python:

* a lead has at most one *live* assignment — the partial unique index
  ``uq_assignments_live_lead`` on ``assignments(lead_id) WHERE live`` — so two
  rounds committed at the same time can never hand one lead to two partners;
* the audit log is append-only — triggers reject UPDATE and DELETE on
  ``audit_log`` on both SQLite and PostgreSQL;
* a lead has at most one *open* pool entry (``uq_pool_entries_open_lead``), and
  a claim closes it with a conditional UPDATE, so a claim race has one winner.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from service.db.types import BigId, JSONDoc, UTCDateTime, utcnow

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ROLES = ("admin", "analyst", "viewer", "partner")
#: States that end an assignment: the lead is free again for a later round.  Which
#: states hold the lead (``live``) is the lifecycle's business; the database only
#: refuses an ended assignment that still claims to be live.
ENDED_STATES = ("rejected", "expired", "reclaimed", "withdrawn")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)


def table_of(model: type[Base]) -> sa.Table:
    """The table of a mapped class, for table-level statements (no ORM bookkeeping)."""
    table = model.__table__
    assert isinstance(table, sa.Table)
    return table


class Partner(Base):
    __tablename__ = "partners"

    partner_id: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    name: Mapped[str] = mapped_column(sa.Text, default="")
    tier: Mapped[str] = mapped_column(sa.String(200))
    regions: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    verticals: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    certifications: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    capacity: Mapped[int] = mapped_column(sa.BigInteger)
    open_leads: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    extras: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        sa.CheckConstraint("capacity >= 0", name="capacity_non_negative"),
        sa.CheckConstraint("open_leads >= 0", name="open_leads_non_negative"),
    )


class Lead(Base):
    __tablename__ = "leads"

    lead_id: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    region: Mapped[str] = mapped_column(sa.Text)
    country: Mapped[str | None] = mapped_column(sa.Text)
    vertical: Mapped[str | None] = mapped_column(sa.Text)
    product: Mapped[str | None] = mapped_column(sa.Text)
    company_size: Mapped[int | None] = mapped_column(sa.BigInteger)
    deal_size: Mapped[float | None] = mapped_column(sa.Float)
    intent: Mapped[str | None] = mapped_column(sa.String(16))
    qualification_score: Mapped[float | None] = mapped_column(sa.Float)
    account_owner_partner_id: Mapped[str | None] = mapped_column(sa.String(200))
    effort: Mapped[float] = mapped_column(sa.Float, default=1.0)
    contact_name: Mapped[str | None] = mapped_column(sa.Text)
    contact_email: Mapped[str | None] = mapped_column(sa.Text)
    contact_phone: Mapped[str | None] = mapped_column(sa.Text)
    extras: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    #: sha256 of the lead's canonical content: re-sending the same lead is a no-op.
    content_hash: Mapped[str] = mapped_column(sa.String(64))
    ingested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class HistoryRecord(Base):
    """One past assignment with its outcome: the model's training data."""

    __tablename__ = "history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    lead_id: Mapped[str] = mapped_column(sa.String(200), index=True)
    partner_id: Mapped[str | None] = mapped_column(sa.String(200))
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime)
    converted: Mapped[int] = mapped_column(sa.SmallInteger)
    record: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    content_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    ingested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (sa.CheckConstraint("converted IN (0, 1)", name="converted_binary"),)


class StoredPolicy(Base):
    """A policy as run; identical content is stored once (``content_hash``)."""

    __tablename__ = "policies"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    content_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    body: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    source_toml: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(sa.String(64))


class Round(Base):
    __tablename__ = "rounds"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    policy_id: Mapped[int] = mapped_column(sa.ForeignKey("policies.id"), index=True)
    status: Mapped[str] = mapped_column(sa.String(32))
    model_version: Mapped[str | None] = mapped_column(sa.String(200))
    n_leads: Mapped[int] = mapped_column(sa.Integer)
    n_assigned: Mapped[int] = mapped_column(sa.Integer)
    n_held_back: Mapped[int] = mapped_column(sa.Integer)
    objective: Mapped[float | None] = mapped_column(sa.Float)
    bound: Mapped[float | None] = mapped_column(sa.Float)
    gap: Mapped[float | None] = mapped_column(sa.Float)
    summary: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(sa.String(64))


class Assignment(Base):
    __tablename__ = "assignments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    round_id: Mapped[int] = mapped_column(sa.ForeignKey("rounds.id"))
    lead_id: Mapped[str] = mapped_column(sa.ForeignKey("leads.lead_id"))
    partner_id: Mapped[str] = mapped_column(sa.ForeignKey("partners.partner_id"))
    score: Mapped[float] = mapped_column(sa.Float)
    rank: Mapped[int | None] = mapped_column(sa.Integer)
    reason: Mapped[str] = mapped_column(sa.Text)
    explanation: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    state: Mapped[str] = mapped_column(sa.String(32), default="offered")
    live: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: How the offer was made: ``round``, ``reroute``, ``realtime`` or ``claim``.
    origin: Mapped[str] = mapped_column(sa.String(16), default="round",
                                        server_default="round")
    #: Re-routes made for the lead before this offer (0 for a round's first offer).
    reroutes: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    #: The failed assignment this one replaces (a re-route).
    previous_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    #: Capacity units the lead takes from the partner (the lead's effort).
    units: Mapped[float] = mapped_column(sa.Float, default=1.0, server_default="1")
    #: When the assignment entered its current state.
    state_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: The next SLA deadline (accept, then contact); ``None`` once none applies.
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    contacted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When ``offer_expiring`` was sent (once per offer).
    warned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Coded reason of a rejection or a lost lead, and the partner's free text.
    reason_code: Mapped[str | None] = mapped_column(sa.String(32))
    reason_text: Mapped[str | None] = mapped_column(sa.Text)

    __table_args__ = (
        # One assignment per lead in a round's own allocation; re-routes, claims and
        # real-time routes made while a round is the latest carry its id as well.
        sa.Index("uq_assignments_round_lead", "round_id", "lead_id", unique=True,
                 sqlite_where=sa.text("origin = 'round'"),
                 postgresql_where=sa.text("origin = 'round'")),
        sa.Index("ix_assignments_lead_id", "lead_id"),
        sa.Index("ix_assignments_round_id_partner_id", "round_id", "partner_id"),
        sa.Index("ix_assignments_partner_id_state", "partner_id", "state"),
        sa.Index(
            "uq_assignments_live_lead",
            "lead_id",
            unique=True,
            sqlite_where=sa.text("live"),
            postgresql_where=sa.text("live"),
        ),
        sa.CheckConstraint(f"NOT (live AND {_in('state', ENDED_STATES)})", name="ended_not_live"),
    )


class AuditEntry(Base):
    """Append-only: who did what, when and why. No code path updates or deletes it."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(sa.String(200))
    actor_role: Mapped[str | None] = mapped_column(sa.String(16))
    action: Mapped[str] = mapped_column(sa.String(64), index=True)
    entity_type: Mapped[str] = mapped_column(sa.String(32))
    entity_id: Mapped[str | None] = mapped_column(sa.String(200))
    round_id: Mapped[int | None] = mapped_column(sa.Integer, index=True)
    lead_id: Mapped[str | None] = mapped_column(sa.String(200), index=True)
    partner_id: Mapped[str | None] = mapped_column(sa.String(200), index=True)
    reason: Mapped[str | None] = mapped_column(sa.Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)


class ApiKey(Base):
    """An API key: only the sha256 of the token is kept, never the token."""

    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    token_sha256: Mapped[str] = mapped_column(sa.String(64))
    role: Mapped[str] = mapped_column(sa.String(16))
    partner_id: Mapped[str | None] = mapped_column(sa.ForeignKey("partners.partner_id"))
    name: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        sa.CheckConstraint(_in("role", ROLES), name="role_known"),
        sa.CheckConstraint(
            "(role = 'partner') = (partner_id IS NOT NULL)", name="partner_key_bound"
        ),
    )


class RoundPartner(Base):
    """A partner as a round left it: its capacity price, capacity and units used since.

    ``used_units`` counts the live assignments of the round's period (its own
    offers, then re-routes, claims and real-time routes while it is the latest
    round); a conditional ``UPDATE ... WHERE used_units + u <= capacity_units``
    takes room, so concurrent workers never overfill a partner.
    """

    __tablename__ = "round_partners"

    round_id: Mapped[int] = mapped_column(sa.ForeignKey("rounds.id"), primary_key=True)
    partner_id: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    price: Mapped[float] = mapped_column(sa.Float)
    capacity_units: Mapped[float] = mapped_column(sa.Float)
    used_units: Mapped[float] = mapped_column(sa.Float, default=0.0)
    price_source: Mapped[str] = mapped_column(sa.String(64), default="")
    priced_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RoundCandidates(Base):
    """A lead's eligible partners in a round with their scores (re-routing needs no re-score)."""

    __tablename__ = "round_candidates"

    round_id: Mapped[int] = mapped_column(sa.ForeignKey("rounds.id"), primary_key=True)
    lead_id: Mapped[str] = mapped_column(sa.String(200), primary_key=True, index=True)
    partner_ids: Mapped[list[str]] = mapped_column(JSONDoc)
    scores: Mapped[list[float]] = mapped_column(JSONDoc)


class PoolEntry(Base):
    """A lead in the claim pool, seen tier by tier (``cascade`` every ``step_hours``)."""

    __tablename__ = "pool_entries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    lead_id: Mapped[str] = mapped_column(sa.ForeignKey("leads.lead_id"))
    round_id: Mapped[int] = mapped_column(sa.ForeignKey("rounds.id"))
    pooled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    cascade: Mapped[list[str]] = mapped_column(JSONDoc)
    step_hours: Mapped[float] = mapped_column(sa.Float)
    reason: Mapped[str] = mapped_column(sa.Text)
    #: ``claimed`` or ``reoffered`` once closed.
    outcome: Mapped[str | None] = mapped_column(sa.String(16))
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(sa.String(200))

    __table_args__ = (
        sa.Index("uq_pool_entries_open_lead", "lead_id", unique=True,
                 sqlite_where=sa.text("closed_at IS NULL"),
                 postgresql_where=sa.text("closed_at IS NULL")),
        sa.Index("ix_pool_entries_closed_at", "closed_at"),
    )


class WebhookSubscription(Base):
    """Where to POST lifecycle events: a partner's endpoint, or ops' (``partner_id`` NULL)."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    partner_id: Mapped[str | None] = mapped_column(sa.ForeignKey("partners.partner_id"),
                                                   index=True)
    url: Mapped[str] = mapped_column(sa.Text)
    #: The HMAC key; kept because every delivery is signed with it.
    secret: Mapped[str] = mapped_column(sa.String(128))
    events: Mapped[list[str]] = mapped_column(JSONDoc)
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(sa.String(200))
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookOutbox(Base):
    """An event to deliver to one subscription, written in the transaction that caused it."""

    __tablename__ = "webhook_outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(sa.String(64))
    subscription_id: Mapped[int] = mapped_column(sa.ForeignKey("webhook_subscriptions.id"))
    event_type: Mapped[str] = mapped_column(sa.String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    data: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    #: ``pending``, ``sending`` (leased by a worker until ``lease_until``), ``delivered``,
    #: ``failed``.
    status: Mapped[str] = mapped_column(sa.String(16), default="pending")
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        sa.UniqueConstraint("event_id", "subscription_id"),
        sa.Index("ix_webhook_outbox_status", "status"),
    )


class WebhookDelivery(Base):
    """One delivery attempt (the :class:`~service.lifecycle.webhooks.DeliveryLog` on disk)."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    subscription_id: Mapped[int] = mapped_column(sa.ForeignKey("webhook_subscriptions.id"),
                                                 index=True)
    event_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    event_type: Mapped[str] = mapped_column(sa.String(32))
    url: Mapped[str] = mapped_column(sa.Text)
    attempt: Mapped[int] = mapped_column(sa.Integer)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status_code: Mapped[int | None] = mapped_column(sa.Integer)
    error: Mapped[str | None] = mapped_column(sa.Text)
    duration_ms: Mapped[float] = mapped_column(sa.Float)
    outcome: Mapped[str] = mapped_column(sa.String(16))
    next_attempt_in_s: Mapped[float | None] = mapped_column(sa.Float)
