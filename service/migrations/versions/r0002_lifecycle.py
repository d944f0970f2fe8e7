"""Lifecycle: offer timestamps and SLA deadlines, round prices and candidates, claim pool, webhooks.

* ``assignments`` gains how the offer was made (``origin``), the re-route count,
  the capacity units, the state's timestamps, the next SLA deadline
  (``due_at``, indexed for the periodic sweep) and the coded reason.  A lead
  re-routed while its round is the latest gets a second assignment with the same
  ``round_id``, so the unique ``(round_id, lead_id)`` becomes a partial unique
  index over the round's own offers (``origin = 'round'``).  SQLite cannot drop a
  constraint in place: the table is rebuilt from the definitions written
  out below (both shapes), so nothing depends on reflecting it.
* ``round_partners`` (price, capacity and units used per partner and round) and
  ``round_candidates`` (each lead's eligible partners and scores) let
  re-routing and real-time routing price and choose without re-scoring.
* ``pool_entries`` with at most one open entry per lead.
* ``webhook_subscriptions``, ``webhook_outbox`` (events written in the
  transaction that caused them) and ``webhook_deliveries`` (every attempt).

Downgrading drops the re-routed, claimed and real-time assignments (they have
no place in r0001's one-assignment-per-round-and-lead schema).

Revision ID: r0002
Revises: r0001
Create Date: 2025-11-24
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from service.db.types import UTCDateTime

revision: str = "r0002"
down_revision: str | None = "r0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONDoc = sa.JSON().with_variant(JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
_ORIGIN_ROUND = sa.text("origin = 'round'")


_OLD_COLUMNS = ("id", "round_id", "lead_id", "partner_id", "score", "rank", "reason",
                "explanation", "state", "live", "created_at", "updated_at")
_ADDED_NULLABLE = (
    ("previous_id", sa.BigInteger()),
    ("due_at", TS),
    ("accepted_at", TS),
    ("contacted_at", TS),
    ("closed_at", TS),
    ("warned_at", TS),
    ("reason_code", sa.String(32)),
    ("reason_text", sa.Text()),
)
_ADDED = ("origin", "reroutes", "units", "state_at", *(n for n, _ in _ADDED_NULLABLE))


def _assignments(name: str, lifecycle: bool) -> sa.Table:
    """``assignments`` as r0001 made it, or with this revision's columns (``lifecycle``)."""
    meta = sa.MetaData()
    for ref, col in (("rounds", "id"), ("leads", "lead_id"), ("partners", "partner_id")):
        sa.Table(ref, meta, sa.Column(col, sa.String(200), primary_key=True))
    extra: list[Any] = []
    if lifecycle:
        extra = [
            sa.Column("origin", sa.String(16), nullable=False, server_default="round"),
            sa.Column("reroutes", sa.Integer(), nullable=False, server_default="0"),
            sa.Column("units", sa.Float(), nullable=False, server_default="1"),
            sa.Column("state_at", TS, nullable=False),
            *(sa.Column(n, t, nullable=True) for n, t in _ADDED_NULLABLE),
        ]
    else:
        extra = [sa.UniqueConstraint("round_id", "lead_id",
                                     name="uq_assignments_round_id_lead_id")]
    return sa.Table(
        name,
        meta,
        sa.Column("id", BigId, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.String(200), nullable=False),
        sa.Column("partner_id", sa.String(200), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("explanation", JSONDoc, nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("live", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        *extra,
        sa.CheckConstraint(
            "NOT (live AND state IN ('rejected', 'expired', 'reclaimed', 'withdrawn'))",
            name="ck_assignments_ended_not_live",
        ),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.lead_id"],
                                name="fk_assignments_lead_id_leads"),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.partner_id"],
                                name="fk_assignments_partner_id_partners"),
        sa.ForeignKeyConstraint(["round_id"], ["rounds.id"],
                                name="fk_assignments_round_id_rounds"),
        sa.PrimaryKeyConstraint("id", name="pk_assignments"),
    )


_R0001_INDEXES = (
    ("ix_assignments_round_id_partner_id", ["round_id", "partner_id"]),
    ("ix_assignments_partner_id_state", ["partner_id", "state"]),
)


def _sqlite_rebuild(lifecycle: bool) -> None:
    """Rebuild ``assignments`` in the other shape: SQLite cannot drop a constraint in place.

    The indexes go with the old table and are recreated on the new one.
    """
    new = _assignments("_assignments_new", lifecycle)
    new.create(op.get_bind())
    cols = ", ".join(_OLD_COLUMNS)
    if lifecycle:  # offers made before this revision have been in their state since their
        # last update
        op.execute(f"INSERT INTO _assignments_new ({cols}, state_at) "
                   f"SELECT {cols}, updated_at FROM assignments")
    else:
        op.execute(f"INSERT INTO _assignments_new ({cols}) SELECT {cols} FROM assignments")
    op.drop_table("assignments")
    op.rename_table("_assignments_new", "assignments")
    op.create_index("uq_assignments_live_lead", "assignments", ["lead_id"], unique=True,
                    sqlite_where=sa.text("live"))
    for name, columns in _R0001_INDEXES:
        op.create_index(name, "assignments", columns)


def _upgrade_assignments() -> None:
    if op.get_context().dialect.name == "sqlite":
        _sqlite_rebuild(lifecycle=True)
    else:
        table = _assignments("assignments", lifecycle=True)
        defaults = {"origin": "round", "reroutes": "0", "units": "1"}
        for name in _ADDED:
            column = table.c[name]
            op.add_column("assignments", sa.Column(
                name, column.type, nullable=column.nullable or name == "state_at",
                server_default=defaults.get(name)))
        op.execute("UPDATE assignments SET state_at = updated_at")
        op.alter_column("assignments", "state_at", nullable=False)
        op.drop_constraint("uq_assignments_round_id_lead_id", "assignments", type_="unique")
    op.create_index("uq_assignments_round_lead", "assignments", ["round_id", "lead_id"],
                    unique=True, sqlite_where=_ORIGIN_ROUND, postgresql_where=_ORIGIN_ROUND)
    op.create_index("ix_assignments_lead_id", "assignments", ["lead_id"])
    op.create_index("ix_assignments_due_at", "assignments", ["due_at"])


def _backfill_deadlines() -> None:
    """Deadlines of offers and accepted leads stored before this revision, from their round's
    policy (the SLA clock runs from their last update)."""
    rows = op.get_bind().execute(
        sa.text("SELECT a.id, a.state, a.updated_at, p.body FROM assignments a "
                "JOIN rounds r ON r.id = a.round_id JOIN policies p ON p.id = r.policy_id "
                "WHERE a.live AND a.state IN ('offered', 'accepted', 'claimed')")
        .columns(id=sa.Integer(), state=sa.String(), updated_at=UTCDateTime(), body=JSONDoc)
    ).all()
    update = sa.text("UPDATE assignments SET due_at = :due WHERE id = :id").bindparams(
        sa.bindparam("due", type_=UTCDateTime()))
    for row in rows:
        sla = (row.body or {}).get("sla", {}) or {}
        hours = (sla.get("accept_within_hours", 24.0) if row.state == "offered"
                 else sla.get("contact_within_hours", 48.0))
        op.get_bind().execute(update, {"due": row.updated_at + timedelta(hours=float(hours)),
                                       "id": row.id})


def upgrade() -> None:
    _upgrade_assignments()
    _backfill_deadlines()
    op.create_table(
        "round_partners",
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.String(200), nullable=False),
        sa.Column("price", sa.Float(), nullable=False),
        sa.Column("capacity_units", sa.Float(), nullable=False),
        sa.Column("used_units", sa.Float(), nullable=False),
        sa.Column("price_source", sa.String(64), nullable=False),
        sa.Column("priced_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["round_id"], ["rounds.id"],
                                name=op.f("fk_round_partners_round_id_rounds")),
        sa.PrimaryKeyConstraint("round_id", "partner_id", name=op.f("pk_round_partners")),
    )
    op.create_table(
        "round_candidates",
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.String(200), nullable=False),
        sa.Column("partner_ids", JSONDoc, nullable=False),
        sa.Column("scores", JSONDoc, nullable=False),
        sa.ForeignKeyConstraint(["round_id"], ["rounds.id"],
                                name=op.f("fk_round_candidates_round_id_rounds")),
        sa.PrimaryKeyConstraint("round_id", "lead_id", name=op.f("pk_round_candidates")),
    )
    op.create_index(op.f("ix_round_candidates_lead_id"), "round_candidates", ["lead_id"])
    op.create_table(
        "pool_entries",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("lead_id", sa.String(200), nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("pooled_at", TS, nullable=False),
        sa.Column("cascade", JSONDoc, nullable=False),
        sa.Column("step_hours", sa.Float(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("closed_at", TS, nullable=True),
        sa.Column("claimed_by", sa.String(200), nullable=True),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.lead_id"],
                                name=op.f("fk_pool_entries_lead_id_leads")),
        sa.ForeignKeyConstraint(["round_id"], ["rounds.id"],
                                name=op.f("fk_pool_entries_round_id_rounds")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pool_entries")),
    )
    # A lead is in the pool at most once at a time: the database enforces it.
    op.create_index("uq_pool_entries_open_lead", "pool_entries", ["lead_id"], unique=True,
                    sqlite_where=sa.text("closed_at IS NULL"),
                    postgresql_where=sa.text("closed_at IS NULL"))
    op.create_index("ix_pool_entries_closed_at", "pool_entries", ["closed_at"])
    op.create_table(
        "webhook_subscriptions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("partner_id", sa.String(200), nullable=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("events", JSONDoc, nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=True),
        sa.Column("deleted_at", TS, nullable=True),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.partner_id"],
                                name=op.f("fk_webhook_subscriptions_partner_id_partners")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_subscriptions")),
    )
    op.create_index(op.f("ix_webhook_subscriptions_partner_id"), "webhook_subscriptions",
                    ["partner_id"])
    op.create_table(
        "webhook_outbox",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("data", JSONDoc, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("lease_until", TS, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.ForeignKeyConstraint(["subscription_id"], ["webhook_subscriptions.id"],
                                name=op.f("fk_webhook_outbox_subscription_id_"
                                          "webhook_subscriptions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_outbox")),
        sa.UniqueConstraint("event_id", "subscription_id",
                            name=op.f("uq_webhook_outbox_event_id_subscription_id")),
    )
    op.create_index("ix_webhook_outbox_status", "webhook_outbox", ["status"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("sent_at", TS, nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("next_attempt_in_s", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["subscription_id"], ["webhook_subscriptions.id"],
                                name=op.f("fk_webhook_deliveries_subscription_id_"
                                          "webhook_subscriptions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_index(op.f("ix_webhook_deliveries_subscription_id"), "webhook_deliveries",
                    ["subscription_id"])
    op.create_index(op.f("ix_webhook_deliveries_event_id"), "webhook_deliveries",
                    ["event_id"])


def downgrade() -> None:
    for table in ("webhook_deliveries", "webhook_outbox", "webhook_subscriptions",
                  "pool_entries", "round_candidates", "round_partners"):
        op.drop_table(table)
    op.execute("DELETE FROM assignments WHERE origin <> 'round'")
    for name in ("ix_assignments_due_at", "ix_assignments_lead_id", "uq_assignments_round_lead"):
        op.drop_index(name, table_name="assignments")
    if op.get_context().dialect.name == "sqlite":
        _sqlite_rebuild(lifecycle=False)
        return
    op.create_unique_constraint("uq_assignments_round_id_lead_id", "assignments",
                                ["round_id", "lead_id"])
    for name in _ADDED:
        op.drop_column("assignments", name)
