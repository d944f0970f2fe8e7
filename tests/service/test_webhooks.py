"""Webhooks against a real HTTP receiver on 127.0.0.1: signatures, retries, backoff, the log.

The receiver is local, so the senders here allow private destinations
explicitly (``LOCAL``); the default policy's refusal has tests of its own.
"""

from __future__ import annotations

import ipaddress
import json
import random
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from allocator.errors import InputError
from service.lifecycle import destinations
from service.lifecycle.clock import FrozenClock, SystemClock
from service.lifecycle.destinations import DestinationPolicy
from service.lifecycle.webhooks import (
    SIGNATURE_HEADER,
    MemoryDeliveryLog,
    RetryPolicy,
    SignatureError,
    WebhookSender,
    make_event,
    sign,
    verify_signature,
)

SECRET = "whsec_test_4f1c"
LOCAL = DestinationPolicy(allow_private=True)  # the receiver listens on 127.0.0.1
OFFER = {"offer_id": "O-1", "lead_id": "L-9", "partner_id": "P3",
         "accept_by": datetime(2025, 3, 4, 9, tzinfo=UTC)}


@dataclass
class Receiver:
    """What the test server does and saw: fails the first ``fail_first`` requests."""

    url: str
    fail_first: int = 0
    fail_status: int = 500
    ok_status: int = 200
    retry_after: str | None = None
    now: FrozenClock | None = None  # verify against this clock instead of the system time
    requests: list[dict] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with state.lock:
                state.requests.append({"headers": dict(self.headers), "body": body,
                                       "path": self.path})
                n = len(state.requests)
            if n <= state.fail_first:
                self.send_response(state.fail_status)
                if state.retry_after is not None:
                    self.send_header("Retry-After", state.retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            try:
                verify_signature(body, self.headers.get(SIGNATURE_HEADER), SECRET,
                                 now=state.now.now() if state.now else None)
                verdict, code = "ok", state.ok_status
            except SignatureError as exc:
                verdict, code = f"bad: {exc}", 400
            with state.lock:
                state.verdicts.append(verdict)
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}/hooks/fairlead")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _sender(sleeps: list[float], **retry: float) -> WebhookSender:
    return WebhookSender(retry=RetryPolicy(**retry), sleep=sleeps.append,  # type: ignore[arg-type]
                         clock=SystemClock(), destinations=LOCAL)


def test_retries_with_backoff_until_delivered(receiver: Receiver) -> None:
    receiver.fail_first = 3
    sleeps: list[float] = []
    event = make_event("offer_made", OFFER)
    with _sender(sleeps, max_attempts=5, base_delay_s=0.5, factor=2.0) as sender:
        result = sender.deliver(receiver.url, SECRET, event)
    assert result.delivered and len(result.attempts) == 4
    assert sleeps == [0.5, 1.0, 2.0]
    assert [a.status_code for a in result.attempts] == [500, 500, 500, 200]
    assert [a.outcome for a in result.attempts] == ["retry", "retry", "retry", "delivered"]
    assert [a.next_attempt_in_s for a in result.attempts] == [0.5, 1.0, 2.0, None]
    assert result.attempts[0].error == "HTTP 500"
    assert isinstance(sender.log, MemoryDeliveryLog)
    assert sender.log.for_event(event.id) == list(result.attempts)
    # the receiver verified the signature of the request it accepted
    assert receiver.verdicts == ["ok"]
    req = receiver.requests[-1]
    assert req["path"] == "/hooks/fairlead"
    assert req["headers"]["X-Fairlead-Event"] == "offer_made"
    assert req["headers"]["X-Fairlead-Delivery"] == event.id
    assert [r["headers"]["X-Fairlead-Attempt"] for r in receiver.requests] == ["1", "2", "3", "4"]
    doc = json.loads(req["body"])
    assert doc["type"] == "offer_made" and doc["data"]["accept_by"] == "2025-03-04T09:00:00+00:00"
    assert all(r["body"] == event.body() for r in receiver.requests)


def test_gives_up_after_max_attempts(receiver: Receiver) -> None:
    receiver.fail_first = 10
    receiver.fail_status = 503
    sleeps: list[float] = []
    log = MemoryDeliveryLog()
    sender = WebhookSender(retry=RetryPolicy(max_attempts=3, base_delay_s=2, max_delay_s=3),
                           sleep=sleeps.append, log=log, destinations=LOCAL)
    result = sender.deliver(receiver.url, SECRET, make_event("lead_won", {"lead_id": "L-1",
                                                                          "partner_id": "P3"}))
    sender.close()
    assert not result.delivered
    assert [a.outcome for a in log.attempts] == ["retry", "retry", "failed"]
    assert sleeps == [2.0, 3.0]  # capped at max_delay_s
    assert len(receiver.requests) == 3 and result.last.status_code == 503


def test_refusal_is_final_and_retry_after_is_honoured(receiver: Receiver) -> None:
    receiver.fail_first = 1
    receiver.fail_status = 410
    sleeps: list[float] = []
    result = _sender(sleeps).deliver(receiver.url, SECRET,
                                     make_event("lead_won", {"lead_id": "L", "partner_id": "P"}))
    assert not result.delivered and len(result.attempts) == 1 and sleeps == []
    assert result.last.error == "HTTP 410: the receiver refused the event; not retried"

    receiver.requests.clear()
    receiver.fail_first, receiver.fail_status, receiver.retry_after = 1, 429, "7"
    result = _sender(sleeps, base_delay_s=1).deliver(
        receiver.url, SECRET, make_event("lead_won", {"lead_id": "L", "partner_id": "P"}))
    assert result.delivered and sleeps == [7.0]


def test_unreachable_receiver_is_retried_and_logged() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps: list[float] = []
    result = _sender(sleeps, max_attempts=3, base_delay_s=1, timeout_s=2).deliver(
        f"http://127.0.0.1:{port}/x", SECRET,
        make_event("lead_reclaimed", {"lead_id": "L", "partner_id": "P", "reason": "no contact"}))
    assert not result.delivered and sleeps == [1.0, 2.0]
    assert all(a.status_code is None and a.error and "ConnectError" in a.error
               for a in result.attempts)


def test_frozen_clock_signs_each_attempt_at_its_own_time(receiver: Receiver) -> None:
    clock = FrozenClock(datetime(2025, 3, 3, 9, tzinfo=UTC))
    receiver.fail_first, receiver.now = 2, clock
    sender = WebhookSender(retry=RetryPolicy(base_delay_s=200, factor=3, max_delay_s=1000),
                           sleep=clock.sleep, clock=clock, destinations=LOCAL)
    result = sender.deliver(receiver.url, SECRET, make_event("offer_expiring", OFFER, clock=clock))
    assert result.delivered and clock.sleeps == [200.0, 600.0]
    stamps = [int(r["headers"][SIGNATURE_HEADER].split(",")[0][2:]) for r in receiver.requests]
    start = int(datetime(2025, 3, 3, 9, tzinfo=UTC).timestamp())
    assert stamps == [start, start + 200, start + 800]
    assert [a.sent_at for a in result.attempts] == [
        datetime(2025, 3, 3, 9, tzinfo=UTC) + timedelta(seconds=s) for s in (0, 200, 800)]
    # the last attempt is 800 s after the first: its own fresh timestamp verified
    assert receiver.verdicts == ["ok"]


def test_signature_verification() -> None:
    body = b'{"a":1}'
    now = datetime(2025, 3, 3, 9, tzinfo=UTC)
    ts = int(now.timestamp())
    header = sign(body, SECRET, ts)
    assert header.startswith(f"t={ts},v1=") and len(header.split("v1=")[1]) == 64
    assert verify_signature(body, header, SECRET, now=now) == ts
    assert verify_signature(body, header, ["old-secret", SECRET], now=now) == ts
    rotated = f"{header},v1={sign(body, 'new', ts).split('v1=')[1]}"
    assert verify_signature(body, rotated, "new", now=now) == ts
    with pytest.raises(SignatureError, match="does not match the body"):
        verify_signature(b'{"a":2}', header, SECRET, now=now)
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(body, header, "wrong", now=now)
    with pytest.raises(SignatureError, match=r"is 301 s from now, beyond the tolerance of 300 s"):
        verify_signature(body, header, SECRET, now=now + timedelta(seconds=301))
    with pytest.raises(SignatureError, match="header is missing"):
        verify_signature(body, None, SECRET, now=now)
    with pytest.raises(SignatureError, match="must look like 't=<unix seconds>,v1=<hex>'"):
        verify_signature(body, "v1=abc", SECRET, now=now)


def test_events_are_validated_and_blind() -> None:
    with pytest.raises(InputError) as info:
        make_event("offer_made", {"lead_id": "L", "contact_email": "a@b.c"})
    msg = str(info.value)
    assert "a 'offer_made' event needs 'offer_id'" in msg
    assert "needs 'partner_id'" in msg and "needs 'accept_by'" in msg
    assert "must not carry 'contact_email': offers are blind until accepted" in msg
    assert "a@b.c" not in msg  # the hidden value is not echoed into logs
    with pytest.raises(InputError, match="the event type must be one of offer_made, "
                                         "offer_expiring, lead_reclaimed, lead_won"):
        make_event("lead_lost", {})
    with pytest.raises(InputError, match="JSON-serializable"):
        make_event("lead_won", {"lead_id": "L", "partner_id": "P", "x": object()})
    ev = make_event("lead_won", {"partner_id": "P", "lead_id": "L"}, event_id="evt_1")
    assert ev.body() == ev.body() and ev.body().startswith(b'{"created_at":')


def test_retry_policy_checks_and_jitter() -> None:
    with pytest.raises(ValueError, match=r"The 'max_attempts' must be at least 1\. Got 0"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="'jitter' must be between 0 and 1"):
        RetryPolicy(jitter=2)
    p = RetryPolicy(base_delay_s=10, jitter=0.5)
    waits = [p.delay_s(2, random.Random(s)) for s in range(50)]
    assert all(10.0 <= w <= 20.0 for w in waits) and len(set(waits)) > 40
    with WebhookSender() as sender, pytest.raises(ValueError, match="secret must not be empty"):
        sender.deliver("http://127.0.0.1:9/", "", make_event(
            "lead_won", {"lead_id": "L", "partner_id": "P"}))


# -- destinations -----------------------------------------------------------------------------

WON = {"lead_id": "L", "partner_id": "P"}


def test_the_default_policy_refuses_a_local_receiver_without_contacting_it(
        receiver: Receiver) -> None:
    sleeps: list[float] = []
    with WebhookSender(sleep=sleeps.append) as sender:  # type: ignore[arg-type]
        result = sender.deliver(receiver.url, SECRET, make_event("lead_won", WON))
    assert not result.delivered and len(result.attempts) == 1 and sleeps == []
    last = result.last
    assert last.outcome == "failed" and last.status_code is None and last.url == receiver.url
    assert last.error is not None and last.error.startswith(
        "not sent: the url's host 127.0.0.1 is a loopback address")
    assert "FAIRLEAD_WEBHOOK_ALLOW_PRIVATE=1" in last.error
    assert receiver.requests == []


def test_a_name_is_posted_to_the_address_checked_with_the_name_in_host(
        receiver: Receiver) -> None:
    url = receiver.url.replace("127.0.0.1", "localhost")
    result = _sender([]).deliver(url, SECRET, make_event("lead_won", WON))
    assert result.delivered and result.last.url == url
    port = url.split(":")[2].split("/")[0]
    assert receiver.requests[0]["headers"]["Host"] == f"localhost:{port}"
    assert receiver.requests[0]["path"] == "/hooks/fairlead"


def test_the_next_checked_address_is_tried_when_one_refuses(
        receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    # Like socket.create_connection: a name with a dead address and a live one still gets
    # through.  No name on this machine has two addresses, so the resolver answers two.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    assert dead != int(receiver.url.split(":")[2].split("/")[0])
    monkeypatch.setattr(destinations, "resolve_host", lambda host, port: [
        ipaddress.ip_address("127.0.0.2"), ipaddress.ip_address("127.0.0.1")])
    result = _sender([]).deliver(receiver.url.replace("127.0.0.1", "hooks.test"), SECRET,
                                 make_event("lead_won", WON))
    assert result.delivered and len(result.attempts) == 1 and len(receiver.requests) == 1


def test_a_host_that_does_not_resolve_is_retried_like_a_refused_connection() -> None:
    sleeps: list[float] = []
    result = _sender(sleeps, max_attempts=2, base_delay_s=1).deliver(
        "https://hooks.fairlead-test.invalid/x", SECRET, make_event("lead_won", WON))
    assert [a.outcome for a in result.attempts] == ["retry", "failed"] and sleeps == [1.0]
    assert all(a.error and "hooks.fairlead-test.invalid does not resolve" in a.error
               for a in result.attempts)


def _https_receiver(folder: Path, name: str) -> tuple[ThreadingHTTPServer, Path]:
    """An HTTPS server on 127.0.0.1 whose self-signed certificate names ``name``."""
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                    f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(204 if self.headers["Host"].startswith("localhost:") else 400)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    return server, cert


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
@pytest.mark.parametrize("cert_name", ["localhost", "other.example"])
def test_https_to_a_checked_address_still_verifies_the_certificate_for_the_name(
        tmp_path: Path, cert_name: str) -> None:
    """The POST goes to 127.0.0.1, yet TLS checks the certificate against ``localhost``
    (the SNI name): a certificate for that name passes, one for another name fails."""
    server, cert = _https_receiver(tmp_path, cert_name)
    try:
        url = f"https://localhost:{server.server_address[1]}/hooks"
        with httpx.Client(verify=ssl.create_default_context(cafile=str(cert)),
                          follow_redirects=False) as client:
            result = WebhookSender(retry=RetryPolicy(max_attempts=1), client=client,
                                   destinations=LOCAL).deliver(
                url, SECRET, make_event("lead_won", WON))
    finally:
        server.shutdown()
        server.server_close()
    if cert_name == "localhost":
        assert result.delivered and result.last.status_code == 204
    else:
        assert not result.delivered and result.last.error is not None
        assert "CERTIFICATE_VERIFY_FAILED" in result.last.error
