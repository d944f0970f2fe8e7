"""API keys: hashed at rest, checked in constant time, created and revoked from the CLI."""

from __future__ import annotations

import hashlib
import json

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from service.cli.main import app as cli
from service.db.keys import authenticate, create_key, revoke_key
from service.db.tables import ApiKey, AuditEntry, Partner


def _partner(session: Session, pid: str = "P7") -> None:
    session.add(Partner(partner_id=pid, name="", tier="gold", regions=["NA"], verticals=[],
                        certifications=[], capacity=3, open_leads=0, active=True, extras={}))
    session.flush()


def test_only_the_hash_is_stored(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        new = create_key(session, "analyst", name="notebook")
        session.commit()
        row = session.get(ApiKey, new.key_id)
        assert row is not None and new.token not in json.dumps(
            {c.name: str(getattr(row, c.name)) for c in ApiKey.__table__.columns})
        assert row.token_sha256 == hashlib.sha256(new.token.encode()).hexdigest()
        assert authenticate(session, new.token) is not None
        assert authenticate(session, new.token[:-1] + "x") is None
        assert session.scalar(sa.select(AuditEntry.action)) == "key.created"


def test_key_rules(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        with pytest.raises(ValueError, match="must be one of admin, analyst, viewer, partner"):
            create_key(session, "root")
        with pytest.raises(ValueError, match="must be bound to a partner"):
            create_key(session, "partner")
        with pytest.raises(ValueError, match="Partner 'P9' does not exist"):
            create_key(session, "partner", partner_id="P9")
        with pytest.raises(ValueError, match="a viewer key cannot name partner 'P7'"):
            create_key(session, "viewer", partner_id="P7")
        _partner(session)
        new = create_key(session, "partner", partner_id="P7")
        principal = authenticate(session, new.token)
        assert principal is not None and principal.partner_id == "P7"
        revoke_key(session, new.key_id)
        assert authenticate(session, new.token) is None
        with pytest.raises(KeyError, match="No API key has id 'nope'"):
            revoke_key(session, "nope")


def test_keys_cli_create_list_revoke(db_url: str, sessions: sessionmaker[Session]) -> None:
    runner = CliRunner()
    created = runner.invoke(cli, ["keys", "create", "--role", "admin", "--db", db_url, "--json"])
    assert created.exit_code == 0, created.output
    token = json.loads(created.stdout)["token"]
    with sessions() as session:
        assert authenticate(session, token) is not None
    bad = runner.invoke(cli, ["keys", "create", "--role", "partner", "--partner", "P1",
                              "--db", db_url])
    assert bad.exit_code == 2 and "does not exist" in bad.output
    listed = runner.invoke(cli, ["keys", "list", "--db", db_url, "--json"])
    (row,) = json.loads(listed.stdout)
    assert row["role"] == "admin" and token not in listed.stdout
    revoked = runner.invoke(cli, ["keys", "revoke", row["key_id"], "--db", db_url])
    assert revoked.exit_code == 0
    with sessions() as session:
        assert authenticate(session, token) is None
    missing = runner.invoke(cli, ["keys", "revoke", "nope", "--db", db_url])
    assert missing.exit_code == 2


def test_serve_refuses_a_database_url_it_cannot_use() -> None:
    result = CliRunner().invoke(cli, ["serve", "--db", "mysql://nobody@nowhere/db"])
    assert result.exit_code == 2
    assert "SQLite or PostgreSQL" in result.output
