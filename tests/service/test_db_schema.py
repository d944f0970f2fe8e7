"""The schema: migrations match the models, and the invariants the database itself enforces."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.orm import Session, sessionmaker

from service.db import audit, migrate
from service.db.tables import (
    ApiKey,
    Assignment,
    AuditEntry,
    Base,
    Lead,
    Partner,
    Round,
    StoredPolicy,
)


def test_migrations_match_the_models(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    assert migrate.current_revision(engine) == migrate.head_revision()


def test_downgrade_to_base_and_back(engine: sa.Engine) -> None:
    migrate.downgrade(engine, "base")
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(engine)
    assert {"partners", "leads", "assignments", "audit_log"} <= set(
        sa.inspect(engine).get_table_names()
    )


def _seed(session: Session) -> list[Round]:
    session.add(Partner(partner_id="P1", tier="gold", regions=["NA"], capacity=3, name="",
                        verticals=[], certifications=[], open_leads=0, active=True, extras={}))
    session.add(Lead(lead_id="L1", created_at=datetime(2024, 5, 1, tzinfo=UTC), region="NA",
                     effort=1.0, extras={}, content_hash="x" * 64))
    policy = StoredPolicy(content_hash="h" * 64, body={})
    session.add(policy)
    session.flush()
    rounds = [Round(policy_id=policy.id, status="optimal", n_leads=1, n_assigned=1,
                    n_held_back=0, summary={}) for _ in range(2)]
    session.add_all(rounds)
    session.flush()
    return rounds


def _assign(round_id: int, **kw: object) -> Assignment:
    values = {"lead_id": "L1", "partner_id": "P1", "score": 0.5, "reason": "best",
              "explanation": {}, "state": "offered", "live": True, **kw}
    return Assignment(round_id=round_id, **values)


def test_a_lead_has_at_most_one_live_assignment(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        r1, r2 = _seed(session)
        session.add(_assign(r1.id))
        session.commit()
        session.add(_assign(r2.id))
        with pytest.raises(sa.exc.IntegrityError, match=r"uq_assignments_live_lead|UNIQUE"):
            session.commit()
        session.rollback()
        # An ended assignment does not hold the lead: the next round may offer it again.
        first = session.scalars(sa.select(Assignment)).one()
        first.state, first.live = "rejected", False
        session.commit()
        session.add(_assign(r2.id))
        session.commit()
        assert session.scalar(sa.select(sa.func.count()).where(Assignment.live)) == 1


def test_an_ended_assignment_cannot_be_live(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        r1, _ = _seed(session)
        session.add(_assign(r1.id, state="expired", live=True))
        with pytest.raises(sa.exc.IntegrityError, match=r"ended_not_live|CHECK"):
            session.commit()


def test_the_audit_log_is_append_only(
    engine: sa.Engine, sessions: sessionmaker[Session]
) -> None:
    with sessions() as session:
        audit.record(session, actor="test", action="lead.created", entity_type="lead",
                     entity_id="L1", lead_id="L1", reason="because")
        session.commit()
    for statement in ("UPDATE audit_log SET reason = 'rewritten'", "DELETE FROM audit_log"):
        with engine.connect() as conn, pytest.raises(sa.exc.DBAPIError, match="append-only"):
            conn.exec_driver_sql(statement)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn, pytest.raises(sa.exc.DBAPIError, match="append-only"):
            conn.exec_driver_sql("TRUNCATE audit_log")
    with sessions() as session:
        (entry,) = session.scalars(sa.select(AuditEntry)).all()
        assert entry.reason == "because"
        assert entry.at.tzinfo is not None


def test_a_partner_key_is_bound_to_a_partner(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        session.add(ApiKey(key_id="abc", token_sha256="0" * 64, role="partner", name=""))
        with pytest.raises(sa.exc.IntegrityError, match=r"partner_key_bound|CHECK"):
            session.commit()
