"""Real-time routing between rounds: the best score − price among eligible partners with room,
held when nothing pays, room taken atomically by concurrent workers, prices re-solved."""

from __future__ import annotations

import threading
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.db import room
from service.db.reroute import Actor
from service.db.tables import (
    Assignment,
    AuditEntry,
    Lead,
    RoundPartner,
    WebhookOutbox,
    WebhookSubscription,
)
from service.routing import build_context, route_lead
from tests.service.lifecycle_support import T0, Service, check_invariants, lead, service

H = timedelta(hours=1)
PRICES = {"P1": 0.05, "P2": 0.0, "P3": 0.01, "P4": 0.0, "P5": 0.02}


def _set_prices(svc: Service, prices: dict[str, float]) -> None:
    with svc.session() as s:
        for pid, price in prices.items():
            s.execute(sa.update(RoundPartner).where(RoundPartner.partner_id == pid)
                      .values(price=price))
        s.commit()


def _free(svc: Service) -> dict[str, float]:
    with svc.session() as s:
        return {p: r.free_units for p, r in room.room(s, 1).items()}


def test_no_round_no_routing(db_url: str, tmp_path: Path) -> None:
    with service(db_url, tmp_path, round_leads=0, run_round=False) as svc:
        r = svc.post("/route", json={"lead": lead(1)})
        assert r.status_code == 409 and "needs a round first" in r.json()["detail"]
        assert svc.get("/leads/L1").status_code == 404  # nothing stored


def test_routed_to_the_best_score_minus_price_among_partners_with_room(
        db_url: str, tmp_path: Path) -> None:
    with service(db_url, tmp_path) as svc:
        _set_prices(svc, PRICES)  # before the first route: the router starts from them
        svc.clock.set(T0 + 3 * H)
        for i in range(20, 40):
            before = _free(svc)
            r = svc.post("/route", json={"lead": lead(i)})
            assert r.status_code == 200, r.json()
            body = r.json()
            with svc.session() as s:
                _, scores = room.candidates(s, f"L{i}")
            with_room = {p: s - PRICES[p] for p, s in scores.items() if before[p] >= 1}
            if not with_room:
                assert not body["routed"]
                assert "has room left" in body["reason"] and body["assignment_id"] is None
                continue
            assert body["routed"], body
            pid = body["partner_id"]
            assert with_room[pid] == pytest.approx(max(with_room.values()))
            assert body["price"] == PRICES[pid] and f"− price {PRICES[pid]:.4g}" in body["reason"]
            assert "prices of round 1" in body["reason"]
            a = svc.live()[f"L{i}"]
            assert (a.id, a.partner_id, a.origin, a.state) == (body["assignment_id"], pid,
                                                               "realtime", "offered")
            assert a.due_at == T0 + 27 * H
            with svc.session() as s:
                entry = s.scalars(sa.select(AuditEntry).where(
                    AuditEntry.action == "assignment.routed",
                    AuditEntry.lead_id == f"L{i}")).one()
                assert entry.reason == a.reason and entry.partner_id == pid
                check_invariants(s)
        free = _free(svc)
        assert free.pop("P6") == 3 and set(free.values()) == {0.0}  # P6 covers only the US
        routed = [a for a in svc.live().values() if a.origin == "realtime"]
        assert len(routed) == 15 - 8  # every EU unit of room, none more

        # The partner sees its routed lead blind, and why, without a rival's name.
        a = routed[0]
        seen = svc.get(f"/offers/{a.id}", svc.partner[a.partner_id]).json()
        assert seen["lead"]["contact"] is None and "another partner" in seen["reason"]

        assert svc.post("/route", json={"lead_id": "L20"}).status_code == 409  # already live
        assert svc.post("/route", json={"lead_id": "NOPE"}).status_code == 404
        far = svc.post("/route", json={"lead": lead(90, region="APAC")}).json()
        assert not far["routed"] and "held for the next round" in far["reason"]
        assert svc.get("/leads/L90").status_code == 200  # held, stored for the next round
        changed = svc.post("/route", json={"lead": lead(90, region="US")})
        assert changed.status_code == 409 and "other content" in changed.json()["detail"]
        assert svc.post("/route", svc.partner["P1"], json={"lead_id": "L90"}).status_code == 403


def test_a_routed_lead_is_stored_audited_in_order_and_its_offer_sent_to_subscribers(
        db_url: str, tmp_path: Path) -> None:
    """One transaction: the lead, room, the offer, lead.created then assignment.routed, and
    the offer_made event for an active subscription (none written while there is none)."""
    with service(db_url, tmp_path) as svc:
        first = svc.post("/route", json={"lead": lead(20)}).json()
        assert first["routed"], first
        with svc.session() as s:
            assert s.scalar(sa.select(sa.func.count()).select_from(WebhookOutbox)) == 0
        with svc.session() as s:  # as POST /webhooks stores it (its URL checks aside)
            s.add(WebhookSubscription(url="https://hooks.example.com/ops", secret="whsec_x",
                                      events=["offer_made"], created_by="test"))
            s.commit()
        body = svc.post("/route", json={"lead": lead(21)}).json()
        assert body["routed"], body
        again = svc.post("/route", json={"lead": lead(21)})  # same content: already live
        assert again.status_code == 409 and "already has a live assignment" in again.json()[
            "detail"]
        with svc.session() as s:
            actions = s.execute(sa.select(AuditEntry.action, AuditEntry.entity_id,
                                          AuditEntry.round_id).where(AuditEntry.lead_id == "L21")
                                .order_by(AuditEntry.id)).all()
            assert [tuple(a) for a in actions] == [
                ("lead.created", "L21", None),
                ("assignment.routed", str(body["assignment_id"]), body["round_id"])]
            events = s.execute(sa.select(WebhookOutbox.event_type, WebhookOutbox.data)).all()
            assert len(events) == 1 and events[0][0] == "offer_made"
            assert events[0][1]["offer_id"] == body["assignment_id"]
            assert s.get(Lead, "L21") is not None
            check_invariants(s)


def test_a_lead_is_held_when_no_partner_pays_its_price(db_url: str, tmp_path: Path) -> None:
    """The service-level function, on a session: prices above every score hold the lead."""
    with service(db_url, tmp_path) as svc:
        svc.post("/leads", json={"leads": [lead(30)]})
        with svc.session() as s:
            ctx = build_context(s, None, None)
            ctx.router.price[:] = 5.0
            stored = s.get(Lead, "L30")
            assert stored is not None
            out = route_lead(s, ctx, stored, svc.clock.now(), Actor("test"))
            s.commit()
        assert not out.routed and out.assignment is None
        assert out.reason.startswith("held for the next round: best is")
        assert "− 5 =" in out.reason and "not above 0" in out.reason
        with svc.session() as s:
            assert s.scalar(sa.select(sa.func.count()).select_from(AuditEntry).where(
                AuditEntry.action == "lead.held", AuditEntry.lead_id == "L30")) == 1
        assert "L30" not in svc.live()


def test_workers_routing_at_once_never_overfill_a_partner(db_url: str, tmp_path: Path) -> None:
    with service(db_url, tmp_path) as svc:
        settings = svc.app.state.settings.model_copy(update={"migrate_on_start": False})
        gate = threading.Barrier(2, timeout=60)
        answers: list[dict[str, object]] = []

        def worker(client: TestClient, first: int) -> None:
            gate.wait()
            for i in range(first, first + 8):
                r = client.post("/route", headers=svc.admin, json={"lead": lead(i)})
                assert r.status_code == 200, r.json()
                answers.append(r.json())

        with ExitStack() as stack:
            clients = [stack.enter_context(TestClient(create_app(settings, clock=svc.clock)))
                       for _ in range(2)]
            threads = [threading.Thread(target=worker, args=(c, 100 + 20 * k))
                       for k, c in enumerate(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
        assert len(answers) == 16
        assert sum(bool(a["routed"]) for a in answers) == 7  # the room left after the round
        with svc.session() as s:
            check_invariants(s)
            over = s.scalar(sa.select(sa.func.count()).select_from(RoundPartner).where(
                RoundPartner.used_units > RoundPartner.capacity_units))
            assert over == 0


def test_prices_are_re_solved_as_arrivals_consume_capacity(db_url: str,
                                                           tmp_path: Path) -> None:
    with service(db_url, tmp_path) as svc:
        assert svc.sweep()["repriced"] is False  # no router yet
        assert svc.post("/route", json={"lead": lead(40)}).json()["routed"]
        assert svc.sweep()["repriced"] is True  # first checkpoint: 5% of 8 expected leads
        with svc.session() as s:
            sources = set(s.scalars(sa.select(RoundPartner.price_source)))
            assert len(sources) == 1 and "re-solved on" in sources.pop()
            entry = s.scalars(sa.select(AuditEntry).where(
                AuditEntry.action == "prices.repriced")).one()
            assert set(entry.detail["prices"]) == {"P1", "P2", "P3", "P4", "P5", "P6"}
            stored = dict(s.execute(sa.select(RoundPartner.partner_id, RoundPartner.price)
                                    .where(RoundPartner.round_id == entry.round_id)).all())
            assert stored == pytest.approx(entry.detail["prices"])  # each partner its own
        # A routed lead that is rejected is re-routed from its stored scores, like any other.
        a = svc.live()["L40"]
        r = svc.post(f"/offers/{a.id}/reject", svc.partner[a.partner_id],
                     json={"reason": "duplicate"})
        assert r.status_code == 200 and r.json()["next"]["action"] == "offer"
        with svc.session() as s:
            again = s.scalars(sa.select(Assignment).where(Assignment.lead_id == "L40",
                                                          Assignment.live)).one()
            assert again.origin == "reroute" and again.partner_id != a.partner_id
            check_invariants(s)


def test_a_reprice_waits_for_a_connection_before_the_write_lock(db_url: str,
                                                               tmp_path: Path) -> None:
    """SQLite: requests hold a connection while they queue on the write lock, so a re-price
    that took the lock first and then waited for a connection would deadlock them all."""
    if not db_url.startswith("sqlite"):
        pytest.skip("the in-process write lock is SQLite's")
    with service(db_url, tmp_path) as svc:
        assert svc.post("/route", json={"lead": lead(40)}).json()["routed"]
        state = svc.app.state
        write_lock, pool = state.write_lock, state.engine.pool
        assert write_lock is not None and state.routing.context.router.reprice_due
        n = pool.size() + pool._max_overflow  # every connection the pool will give
        holding, go = threading.Barrier(n + 1, timeout=30), threading.Event()

        def request() -> None:  # as POST /route: a connection, then the write lock
            with state.sessionmaker() as s:
                s.connection()
                holding.wait()
                assert go.wait(30)
                with write_lock:
                    s.execute(sa.select(1))

        requests = [threading.Thread(target=request) for _ in range(n)]
        for t in requests:
            t.start()
        holding.wait()  # the pool is empty
        done: list[bool] = []
        job = threading.Thread(target=lambda: done.append(
            state.routing.reprice_if_due(state.sessionmaker, svc.clock.now())))
        job.start()
        job.join(0.5)  # waiting for a connection (must not hold the lock meanwhile)
        go.set()
        for t in [*requests, job]:
            t.join(20)
        assert done == [True] and not any(t.is_alive() for t in requests)


def test_leads_scored_together_get_what_a_round_gives_each(tmp_path: Path) -> None:
    """Concurrent requests each get their own answer (the round's pairs and values for its
    lead) or their own errors, as its only row; a scorer that reads frames serves them in
    batches, the heuristic prior in each request's thread."""
    import tomllib
    from concurrent.futures import ThreadPoolExecutor
    from types import SimpleNamespace

    from allocator.errors import InputError
    from allocator.policy import policy_from_dict
    from service.contract import validate_leads, validate_partners
    from service.db.records import lead_content
    from service.pipeline import score_round
    from service.route_scoring import ScoredLead, ScoringBatcher
    from tests.service.api_support import POLICY_TOML as CHANNEL_POLICY
    from tests.service.api_support import channel, rows

    ch = channel()
    policy = policy_from_dict(tomllib.loads(CHANNEL_POLICY))
    partners = validate_partners(ch.partners, file="partners", policy=policy)
    records = rows(ch.leads)
    records[7] = {**records[7], "intent": "urgent", "qualification_score": 140}

    def scorer(pairs: pd.DataFrame, leads: pd.DataFrame, partners: pd.DataFrame) -> np.ndarray:
        return 0.01 + 0.001 * pairs["partner_index"].to_numpy()  # per pair, as a model is

    declined = {3: [str(ch.partners["partner_id"].iloc[0])]}
    for given in (None, scorer):
        ctx = SimpleNamespace(partners=partners, policy=policy, scorer=given)
        batcher = ScoringBatcher()

        def ask(i: int, ctx: SimpleNamespace = ctx,
                batcher: ScoringBatcher = batcher) -> ScoredLead | InputError:
            try:
                return batcher.score(ctx, records[i], declined.get(i, ()))
            except InputError as exc:
                return exc

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(ask, range(len(records))))
        batcher.close()
        if given is None:
            assert not batcher.batches  # per lead, no frame, no batch
        else:
            assert max(batcher.batches) > 1  # requests were served together
        error = answers[7]
        assert isinstance(error, InputError) and {p.row for p in error.problems} == {1}
        assert {p.column for p in error.problems} == {"intent", "qualification_score"}
        for i, got in enumerate(answers):
            if i == 7:
                continue
            one = validate_leads(pd.DataFrame([records[i]]), file="lead")
            rejected = (pd.DataFrame({"lead_id": [records[i]["lead_id"]],
                                      "partner_id": declined[i]}) if i in declined else None)
            want = score_round(partners, one, policy, scorer=given, rejected=rejected)
            assert isinstance(got, ScoredLead)
            assert lead_content(got.record) == lead_content(one.to_dict("records")[0])
            if len(want.held_back):
                assert got.held == want.held_back["reason"].iloc[0]
                continue
            assert list(got.partner_ids) == want.pairs["partner_id"].tolist()
            assert got.values is not None and np.allclose(got.values, want.values)
