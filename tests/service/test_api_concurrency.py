"""Rounds started at the same time never give one lead to two partners.

The guarantee is the database's (a partial unique index on live assignments),
so these tests race real connections: threads with their own sessions, and two
app instances ("workers") serving requests at once.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from service.api.app import create_app
from service.api.model_state import ModelState
from service.api.round_runner import plan_round
from service.api.schemas import RoundCreate
from service.db.rounds import RoundConflictError, store_round
from service.db.tables import Assignment, AuditEntry, Round, StoredPolicy
from service.settings import Settings
from tests.service.api_support import POLICY_TOML, channel, rows

NO_MODEL = ModelState(False, None, "no model in this test")


def _ingest(client: TestClient, headers: dict[str, str]) -> None:
    ch = channel()
    assert client.post("/partners", headers=headers,
                       json={"partners": rows(ch.partners)}).status_code == 200
    assert client.post("/leads", headers=headers, json={"leads": rows(ch.leads)}).status_code == 200


def _live_per_lead(session: Session) -> Counter[str]:
    return Counter(session.scalars(sa.select(Assignment.lead_id).where(Assignment.live)))


def _count(session: Session, table: Any, *where: Any) -> int:
    return int(session.scalar(sa.select(sa.func.count()).select_from(table).where(*where)) or 0)


def test_racing_rounds_on_the_same_leads_store_one_and_refuse_the_other(
    client: TestClient, admin: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    _ingest(client, admin)
    body = RoundCreate.model_validate({"policy": {"toml": POLICY_TOML}})
    planned = threading.Barrier(2, timeout=60)
    outcome: dict[int, tuple[str, Any]] = {}

    def worker(k: int) -> None:
        with sessions() as session:
            plan = plan_round(session, body, NO_MODEL, time_limit_s=20)
            planned.wait()  # both planned over the same free leads; now both commit at once
            try:
                row = store_round(session, plan, actor=f"worker-{k}")
                outcome[k] = ("stored", (row.id, {a.lead_id for a in plan.assignments}))
            except RoundConflictError as exc:
                outcome[k] = ("refused", exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(kind for kind, _ in outcome.values()) == ["refused", "stored"]
    (round_id, leads), = [v for kind, v in outcome.values() if kind == "stored"]
    (error,), = [[v] for kind, v in outcome.values() if kind == "refused"]
    assert set(error.lead_ids) <= leads and error.lead_ids
    assert error.rounds == [round_id]
    assert "Nothing was stored" in str(error)

    with sessions() as session:
        live = _live_per_lead(session)
        assert max(live.values()) == 1
        assert set(live) == leads
        # The refused round left no trace: one round, one policy, one set of audit entries.
        assert _count(session, Round) == 1
        assert _count(session, StoredPolicy) == 1
        offered = _count(session, AuditEntry, AuditEntry.action == "assignment.offered")
        assert offered == len(leads)


def test_two_workers_serving_rounds_at_once(
    client: TestClient, admin: dict[str, str], settings: Settings,
    sessions: sessionmaker[Session],
) -> None:
    _ingest(client, admin)
    other = create_app(settings)  # a second worker: its own engine and connection pool
    start = threading.Barrier(2, timeout=60)
    answers: list[Any] = [None, None]

    def post(k: int, app_client: TestClient) -> None:
        start.wait()
        answers[k] = app_client.post("/rounds", headers=admin,
                                     json={"policy": {"toml": POLICY_TOML}})

    with TestClient(other) as second:
        threads = [threading.Thread(target=post, args=(0, client)),
                   threading.Thread(target=post, args=(1, second))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    codes = sorted(a.status_code for a in answers)
    assert codes in ([201, 201], [201, 409]), [a.json() for a in answers]
    with sessions() as session:
        live = _live_per_lead(session)
        assert max(live.values()) == 1
        stored = [a.json() for a in answers if a.status_code == 201]
        assert sum(r["n_assigned"] for r in stored) == sum(live.values())
        assert _count(session, Round) == len(stored)
    for a in answers:
        if a.status_code == 409:
            assert a.json()["ids"] and "run the round again" in a.json()["detail"]
