"""The SLA job with several workers at once, from cron (``fairlead sweep``), and in the service's
background thread; and the migration that brought the lifecycle to databases of r0001."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from service.api.app import create_app
from service.cli.main import app as cli
from service.db import migrate
from service.db.engine import make_engine, make_sessionmaker
from service.db.sweep import SweepReport, sweep
from service.db.tables import Assignment, AuditEntry
from tests.service.lifecycle_support import T0, check_invariants, service

H = timedelta(hours=1)


def test_workers_sweeping_at_once_handle_each_due_offer_once(db_url: str,
                                                             tmp_path: Path) -> None:
    with service(db_url, tmp_path, round_leads=15) as svc:
        assert len(svc.live()) == 15
        svc.clock.set(T0 + 24 * H)
        gate = threading.Barrier(4, timeout=60)
        reports: list[SweepReport] = []

        def worker() -> None:
            engine = make_engine(db_url)  # a worker of its own: own engine, own connections
            try:
                gate.wait()
                reports.append(sweep(make_sessionmaker(engine), svc.clock,
                                     warn_within_hours=None))
            finally:
                engine.dispose()

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert len(reports) == 4
        assert sum(r.expired for r in reports) == 15
        assert Counter(lid for r in reports for lid in r.lead_ids) == Counter(
            f"L{i}" for i in range(15))
        with svc.session() as s:
            expired = Counter(s.scalars(sa.select(AuditEntry.lead_id)
                                        .where(AuditEntry.action == "offer.expired")))
            assert set(expired.values()) == {1} and len(expired) == 15
            moved = s.scalar(sa.select(sa.func.count()).select_from(AuditEntry).where(
                AuditEntry.action.in_(("assignment.rerouted", "lead.pooled"))))
            assert moved == 15
            check_invariants(s)
        assert sweep(svc.app.state.sessionmaker, svc.clock).expired == 0  # idempotent


def test_fairlead_sweep_from_cron(db_url: str, tmp_path: Path) -> None:
    """The CLI runs on the real clock: offers made in 2025 are long overdue."""
    with service(db_url, tmp_path):
        pass
    runner = CliRunner()
    result = runner.invoke(cli, ["sweep", "--db", db_url, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["expired"] == 8 and report["rerouted"] + report["pooled"] == 8
    assert report["webhooks_delivered"] == 0
    again = json.loads(runner.invoke(cli, ["sweep", "--db", db_url, "--json"]).stdout)
    assert again["expired"] == 0  # re-offered just now: due tomorrow
    engine = make_engine(db_url)
    with make_sessionmaker(engine)() as s:
        check_invariants(s)
        due = [d for d in s.scalars(sa.select(Assignment.due_at).where(Assignment.live)) if d]
        assert due and min(due) > datetime.now(UTC) + 23 * H
    engine.dispose()
    bad = runner.invoke(cli, ["sweep", "--db", "mysql://nope/db"])
    assert bad.exit_code == 2 and "SQLite or PostgreSQL" in bad.output


def test_the_background_job_runs_in_the_service(db_url: str, tmp_path: Path) -> None:
    with service(db_url, tmp_path) as svc:
        settings = svc.app.state.settings.model_copy(
            update={"lifecycle_interval_s": 0.05, "migrate_on_start": False})
        svc.clock.set(T0 + 24 * H)
        app = create_app(settings, clock=svc.clock)
        with TestClient(app):
            job = app.state.lifecycle_job
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and (job.passes < 1 or any(
                    a.origin == "round" for a in svc.live().values())):
                time.sleep(0.05)
            assert job.passes >= 1 and job.failures == 0
        assert not job._thread.is_alive()  # stopped with the app
        assert all(a.origin == "reroute" for a in svc.live().values())
        with svc.session() as s:
            check_invariants(s)


def test_offers_stored_before_the_lifecycle_get_deadlines(db_url: str) -> None:
    """r0001 -> r0002 keeps every assignment, dates its state and its SLA deadline from its
    round's policy, and lets a lead be offered twice in one round (re-routes)."""
    engine = make_engine(db_url)
    try:
        migrate.downgrade(engine, "r0001")
        stamp = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
        body = json.dumps({"sla": {"accept_within_hours": 10}})
        with engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO partners (partner_id, name, tier, regions, verticals, "
                "certifications, capacity, open_leads, active, extras, created_at, updated_at) "
                "VALUES ('P1', '', 'gold', '[]', '[]', '[]', 3, 0, true, '{}', :t, :t)"),
                {"t": stamp})
            conn.execute(sa.text(
                "INSERT INTO leads (lead_id, created_at, region, effort, extras, content_hash, "
                "ingested_at) VALUES ('L1', :t, 'EU', 1.0, '{}', 'h', :t)"), {"t": stamp})
            conn.execute(sa.text(
                "INSERT INTO policies (id, content_hash, body, created_at) "
                "VALUES (1, 'x', :b, :t)"), {"b": body, "t": stamp})
            conn.execute(sa.text(
                "INSERT INTO rounds (id, policy_id, status, n_leads, n_assigned, n_held_back, "
                "summary, created_at) VALUES (1, 1, 'optimal', 1, 1, 0, '{}', :t)"),
                {"t": stamp})
            conn.execute(sa.text(
                "INSERT INTO assignments (round_id, lead_id, partner_id, score, reason, "
                "explanation, state, live, created_at, updated_at) VALUES "
                "(1, 'L1', 'P1', 0.5, 'best', '{}', 'offered', true, :t, :t)"), {"t": stamp})
        migrate.upgrade(engine)
        with make_sessionmaker(engine)() as s:
            a = s.scalars(sa.select(Assignment)).one()
            assert (a.origin, a.reroutes, a.units, a.state_at) == ("round", 0, 1.0, stamp)
            assert a.due_at == stamp + timedelta(hours=10)
            a.state, a.live = "expired", False
            s.add(Assignment(round_id=1, lead_id="L1", partner_id="P1", score=0.4, reason="again",
                             explanation={}, state="offered", live=True, origin="reroute",
                             state_at=stamp))
            s.commit()
        migrate.downgrade(engine, "r0001")  # the re-route has no place in r0001: dropped
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM assignments")).scalar() == 1
        migrate.upgrade(engine)
    finally:
        engine.dispose()
