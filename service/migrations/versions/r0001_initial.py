"""Initial schema: partners, leads, history, policies, rounds, assignments, audit log, keys.

Revision ID: r0001
Revises:
Create Date: 2025-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "r0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONDoc = sa.JSON().with_variant(JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)

_PG_APPEND_ONLY = """
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "partners",
        sa.Column("partner_id", sa.String(200), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("tier", sa.String(200), nullable=False),
        sa.Column("regions", JSONDoc, nullable=False),
        sa.Column("verticals", JSONDoc, nullable=False),
        sa.Column("certifications", JSONDoc, nullable=False),
        sa.Column("capacity", sa.BigInteger(), nullable=False),
        sa.Column("open_leads", sa.BigInteger(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("extras", JSONDoc, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint("capacity >= 0", name=op.f("ck_partners_capacity_non_negative")),
        sa.CheckConstraint("open_leads >= 0", name=op.f("ck_partners_open_leads_non_negative")),
        sa.PrimaryKeyConstraint("partner_id", name=op.f("pk_partners")),
    )
    op.create_table(
        "leads",
        sa.Column("lead_id", sa.String(200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("region", sa.Text(), nullable=False),
        sa.Column("country", sa.Text(), nullable=True),
        sa.Column("vertical", sa.Text(), nullable=True),
        sa.Column("product", sa.Text(), nullable=True),
        sa.Column("company_size", sa.BigInteger(), nullable=True),
        sa.Column("deal_size", sa.Float(), nullable=True),
        sa.Column("intent", sa.String(16), nullable=True),
        sa.Column("qualification_score", sa.Float(), nullable=True),
        sa.Column("account_owner_partner_id", sa.String(200), nullable=True),
        sa.Column("effort", sa.Float(), nullable=False),
        sa.Column("contact_name", sa.Text(), nullable=True),
        sa.Column("contact_email", sa.Text(), nullable=True),
        sa.Column("contact_phone", sa.Text(), nullable=True),
        sa.Column("extras", JSONDoc, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("ingested_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("lead_id", name=op.f("pk_leads")),
    )
    op.create_table(
        "history",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("lead_id", sa.String(200), nullable=False),
        sa.Column("partner_id", sa.String(200), nullable=True),
        sa.Column("assigned_at", TS, nullable=False),
        sa.Column("converted", sa.SmallInteger(), nullable=False),
        sa.Column("record", JSONDoc, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("ingested_at", TS, nullable=False),
        sa.CheckConstraint("converted IN (0, 1)", name=op.f("ck_history_converted_binary")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_history")),
        sa.UniqueConstraint("content_hash", name=op.f("uq_history_content_hash")),
    )
    op.create_index(op.f("ix_history_lead_id"), "history", ["lead_id"])
    op.create_table(
        "policies",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("body", JSONDoc, nullable=False),
        sa.Column("source_toml", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policies")),
        sa.UniqueConstraint("content_hash", name=op.f("uq_policies_content_hash")),
    )
    op.create_table(
        "rounds",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("policy_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("model_version", sa.String(200), nullable=True),
        sa.Column("n_leads", sa.Integer(), nullable=False),
        sa.Column("n_assigned", sa.Integer(), nullable=False),
        sa.Column("n_held_back", sa.Integer(), nullable=False),
        sa.Column("objective", sa.Float(), nullable=True),
        sa.Column("bound", sa.Float(), nullable=True),
        sa.Column("gap", sa.Float(), nullable=True),
        sa.Column("summary", JSONDoc, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(
            ["policy_id"], ["policies.id"], name=op.f("fk_rounds_policy_id_policies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rounds")),
    )
    op.create_index(op.f("ix_rounds_policy_id"), "rounds", ["policy_id"])
    op.create_table(
        "assignments",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
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
        sa.CheckConstraint(
            "NOT (live AND state IN ('rejected', 'expired', 'reclaimed', 'withdrawn'))",
            name=op.f("ck_assignments_ended_not_live"),
        ),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.lead_id"], name=op.f("fk_assignments_lead_id_leads")
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            ["partners.partner_id"],
            name=op.f("fk_assignments_partner_id_partners"),
        ),
        sa.ForeignKeyConstraint(
            ["round_id"], ["rounds.id"], name=op.f("fk_assignments_round_id_rounds")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assignments")),
        sa.UniqueConstraint("round_id", "lead_id", name=op.f("uq_assignments_round_id_lead_id")),
    )
    op.create_index("ix_assignments_round_id_partner_id", "assignments", ["round_id", "partner_id"])
    op.create_index("ix_assignments_partner_id_state", "assignments", ["partner_id", "state"])
    # The database, not Python, guarantees a lead has at most one live assignment.
    op.create_index(
        "uq_assignments_live_lead",
        "assignments",
        ["lead_id"],
        unique=True,
        sqlite_where=sa.text("live"),
        postgresql_where=sa.text("live"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("actor_role", sa.String(16), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("entity_type", sa.String(32), nullable=False),
        sa.Column("entity_id", sa.String(200), nullable=True),
        sa.Column("round_id", sa.Integer(), nullable=True),
        sa.Column("lead_id", sa.String(200), nullable=True),
        sa.Column("partner_id", sa.String(200), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("detail", JSONDoc, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    for col in ("action", "round_id", "lead_id", "partner_id"):
        op.create_index(op.f(f"ix_audit_log_{col}"), "audit_log", [col])
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("partner_id", sa.String(200), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.CheckConstraint(
            "role IN ('admin', 'analyst', 'viewer', 'partner')", name=op.f("ck_api_keys_role_known")
        ),
        sa.CheckConstraint(
            "(role = 'partner') = (partner_id IS NOT NULL)",
            name=op.f("ck_api_keys_partner_key_bound"),
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.partner_id"], name=op.f("fk_api_keys_partner_id_partners")
        ),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_api_keys")),
    )
    _make_audit_log_append_only()


def _make_audit_log_append_only() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(_PG_APPEND_ONLY)
        op.execute(
            "CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log "
                f"BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: {verb} is not allowed'); "
                "END"
            )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update_delete ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    for table in (
        "api_keys",
        "audit_log",
        "assignments",
        "rounds",
        "policies",
        "history",
        "leads",
        "partners",
    ):
        op.drop_table(table)
