"""Webhooks end to end: subscriptions over HTTP, events from real lifecycle steps, delivered
to a real HTTP server on 127.0.0.1 with valid signatures, retried with backoff, logged.

The receiver is local, so these services set ``webhook_allow_private=True``; the
refusal of private destinations (at subscription and at delivery) is tested here too.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from service.db import outbox
from service.db.tables import WebhookOutbox
from service.lifecycle import destinations
from service.lifecycle.destinations import DestinationPolicy
from service.lifecycle.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    RetryPolicy,
    verify_signature,
)
from service.notify import deliver_pending
from tests.service.lifecycle_support import POLICY_TOML, T0, Service, service

H = timedelta(hours=1)
EVENTS = ["offer_made", "offer_expiring", "lead_reclaimed", "lead_won"]


@dataclass
class Receiver:
    """A real HTTP server: records each POST; answers the scripted statuses first, then 200."""

    url: str
    got: list[dict[str, Any]] = field(default_factory=list)
    script: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def events(self, path: str, kind: str | None = None) -> list[dict[str, Any]]:
        return [g for g in self.got if g["path"] == path and g["status"] == 200
                and (kind is None or g["body"]["type"] == kind)]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    box: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            rec = box["r"]
            with rec.lock:
                status = rec.script.pop(0) if rec.script else 200
                rec.got.append({"path": self.path, "raw": raw, "body": json.loads(raw),
                                "headers": dict(self.headers), "status": status})
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box["r"] = Receiver(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield box["r"]
    server.shutdown()
    server.server_close()


def _subscribe(svc: Service, who: dict[str, str], url: str, **extra: Any) -> dict[str, Any]:
    r = svc.post("/webhooks", who, json={"url": url, "events": EVENTS, **extra})
    assert r.status_code == 201, r.json()
    out: dict[str, Any] = r.json()
    assert out["secret"].startswith("whsec_")
    return out


def _deliver(svc: Service) -> tuple[int, int]:
    report = deliver_pending(svc.app.state.sessionmaker, svc.clock,
                             retry=RetryPolicy(max_attempts=3, base_delay_s=2.0),
                             sleep=svc.clock.sleep,
                             destinations=svc.app.state.settings.webhook_destinations())
    return report.delivered, report.failed


def test_events_reach_a_real_receiver_signed_retried_and_logged(
        db_url: str, tmp_path: Path, receiver: Receiver) -> None:
    with service(db_url, tmp_path, run_round=False, webhook_allow_private=True) as svc:
        ops = _subscribe(svc, svc.admin, receiver.url + "/ops")
        mine = {p: _subscribe(svc, svc.partner[p], f"{receiver.url}/{p}")
                for p in ("P1", "P2", "P3", "P4", "P5")}
        dead = _subscribe(svc, svc.admin, "http://127.0.0.1:9/closed")  # nobody listens
        assert svc.post("/webhooks", svc.partner["P1"],
                        json={"url": receiver.url, "events": EVENTS, "partner_id": "P2"}
                        ).status_code == 403
        bad = svc.post("/webhooks", json={"url": "ftp://x", "events": ["lead_lost"]})
        assert bad.status_code == 422 and len(bad.json()["problems"]) == 2
        assert [w["id"] for w in svc.get("/webhooks", svc.partner["P1"]).json()["items"]] == [
            mine["P1"]["id"]]

        assert svc.post("/rounds", json={"policy": {"toml": POLICY_TOML}}).status_code == 201
        receiver.script = [500]  # the first POST fails: retried after 2 s (the FrozenClock's)
        delivered, failed = _deliver(svc)
        offers = svc.live()
        assert (delivered, failed) == (2 * len(offers), len(offers))
        assert 2.0 in svc.clock.sleeps

        made = receiver.events("/ops", "offer_made")
        assert sorted(e["body"]["data"]["lead_id"] for e in made) == sorted(offers)
        for p in mine:
            got = receiver.events(f"/{p}")
            assert {e["body"]["data"]["partner_id"] for e in got} <= {p}
            assert len(got) == sum(a.partner_id == p for a in offers.values())
        for e in receiver.got:
            secret = (ops if e["path"] == "/ops" else mine[e["path"][1:]])["secret"]
            verify_signature(e["raw"], e["headers"][SIGNATURE_HEADER], secret,
                             now=svc.clock.now())
            assert e["headers"][EVENT_HEADER] == e["body"]["type"]
            assert e["headers"][DELIVERY_HEADER] == e["body"]["id"]
            assert "example.com" not in e["raw"].decode()  # offers are blind
            data = e["body"]["data"]
            assert data["accept_by"] == (T0 + 24 * H).isoformat()
            assert set(data["lead"]) == {"region", "country", "vertical", "product",
                                         "company_size", "intent"}

        logged = [d["outcome"] for sub in (ops, *mine.values())
                  for d in svc.get(f"/webhooks/{sub['id']}/deliveries",
                                   params={"limit": 1000}).json()["items"]]
        assert logged.count("retry") == 1 and logged.count("delivered") == 2 * len(offers)
        failed_log = svc.get(f"/webhooks/{dead['id']}/deliveries",
                             params={"limit": 1000}).json()["items"]
        assert [d["outcome"] for d in failed_log] == ["retry", "retry", "failed"] * len(offers)
        assert "ConnectError" in failed_log[0]["error"]
        assert svc.get(f"/webhooks/{ops['id']}/deliveries", svc.partner["P1"]).status_code == 404
        with svc.session() as s:
            statuses = set(s.scalars(sa.select(WebhookOutbox.status)))
        assert statuses <= {"delivered", "failed"}
        assert _deliver(svc) == (0, 0)  # nothing is sent twice

        _later_events(svc, receiver, mine)


def _later_events(svc: Service, receiver: Receiver, mine: dict[str, dict[str, Any]]) -> None:
    """offer_expiring once, 4 h before the deadline; lead_won; lead_reclaimed; unsubscribing."""
    live = svc.live()
    held = {p: [a for a in live.values() if a.partner_id == p] for p in mine}
    busiest = max(sorted(held), key=lambda p: len(held[p]))
    quiet = next(p for p in sorted(held) if p != busiest and held[p])
    assert svc.client.delete(f"/webhooks/{mine[quiet]['id']}",
                             headers=svc.partner[quiet]).status_code == 204
    assert svc.client.delete(f"/webhooks/{mine[quiet]['id']}",
                             headers=svc.partner[quiet]).status_code == 404
    receiver.got.clear()
    svc.clock.set(T0 + 19 * H)
    assert svc.sweep()["warned"] == 0
    svc.clock.set(T0 + 20 * H)
    assert svc.sweep()["warned"] == len(live)
    assert svc.sweep()["warned"] == 0
    _deliver(svc)
    assert len(receiver.events("/ops", "offer_expiring")) == len(live)
    assert len(receiver.events(f"/{busiest}", "offer_expiring")) == len(held[busiest])
    assert receiver.events(f"/{quiet}") == []  # unsubscribed

    won, kept = held[busiest][:2]
    key = svc.partner[busiest]
    for a in (won, kept):
        assert svc.post(f"/offers/{a.id}/accept", key).status_code == 200
    assert svc.post(f"/offers/{won.id}/disposition", key,
                    json={"disposition": "won"}).status_code == 200
    svc.clock.set(T0 + 69 * H)  # accepted at 20 h (and the retry waits): no contact by 69 h
    assert svc.sweep()["reclaimed"] == 1
    receiver.got.clear()
    _deliver(svc)
    for path in (f"/{busiest}", "/ops"):
        assert [e["body"]["data"]["lead_id"] for e in receiver.events(path, "lead_won")] == [
            won.lead_id]
        reclaimed = receiver.events(path, "lead_reclaimed")
        assert [e["body"]["data"]["lead_id"] for e in reclaimed] == [kept.lead_id]
        assert "no contact reported" in reclaimed[0]["body"]["data"]["reason"]


def _log(svc: Service, sub_id: int) -> list[dict[str, Any]]:
    r = svc.get(f"/webhooks/{sub_id}/deliveries", params={"limit": 1000})
    assert r.status_code == 200, r.json()
    return list(r.json()["items"])


def _outbox_statuses(svc: Service) -> set[str]:
    with svc.session() as s:
        return set(s.scalars(sa.select(WebhookOutbox.status)))


def test_a_host_rebound_to_a_private_address_is_not_sent_logged_failed_never_retried(
        db_url: str, tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: the name resolves to a public address when subscribed, then to the
    receiver's own 127.0.0.1.  The default policy refuses the delivery before connecting."""
    answers = {"hooks.partner.test": [ipaddress.ip_address("93.184.215.14")]}

    def resolve(host: str, port: int) -> list[Any]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return answers[host]

    monkeypatch.setattr(destinations, "resolve_host", resolve)
    port = receiver.url.rsplit(":", 1)[1]
    with service(db_url, tmp_path, run_round=False) as svc:  # the default: public only
        url = f"http://hooks.partner.test:{port}/ops"
        hook = _subscribe(svc, svc.admin, url)
        answers["hooks.partner.test"] = [ipaddress.ip_address("127.0.0.1")]
        assert svc.post("/rounds", json={"policy": {"toml": POLICY_TOML}}).status_code == 201
        offers = svc.live()
        assert offers and _deliver(svc) == (0, len(offers))
        assert receiver.got == [] and svc.clock.sleeps == []  # not contacted, not retried
        log = _log(svc, hook["id"])
        assert [(d["attempt"], d["outcome"], d["status_code"], d["url"]) for d in log] == [
            (1, "failed", None, url)] * len(offers)
        assert log[0]["error"].startswith(
            "not sent: the url's host hooks.partner.test resolves to 127.0.0.1, which is a "
            "loopback address")
        assert "FAIRLEAD_WEBHOOK_ALLOW_PRIVATE=1" in log[0]["error"]
        assert _outbox_statuses(svc) == {"failed"}
        assert _deliver(svc) == (0, 0) and len(_log(svc, hook["id"])) == len(offers)


def test_a_subscription_the_policy_no_longer_allows_is_refused_at_delivery(
        db_url: str, tmp_path: Path, receiver: Receiver) -> None:
    """A URL stored while private addresses were allowed (or before the policy existed) is
    checked again when delivering: the service now refuses it; nothing reaches it."""
    with service(db_url, tmp_path, run_round=False) as svc:
        with svc.session() as s:
            sub = outbox.subscribe(s, None, receiver.url + "/ops", EVENTS, "ops", svc.clock.now(),
                                   DestinationPolicy(allow_private=True))
            s.commit()
            sub_id = sub.id
        assert svc.post("/rounds", json={"policy": {"toml": POLICY_TOML}}).status_code == 201
        n = len(svc.live())
        assert _deliver(svc) == (0, n) and receiver.got == []
        log = _log(svc, sub_id)
        assert [d["outcome"] for d in log] == ["failed"] * n
        assert "the url's host 127.0.0.1 is a loopback address" in log[0]["error"]
        assert _outbox_statuses(svc) == {"failed"}
