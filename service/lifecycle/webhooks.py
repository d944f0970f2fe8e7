"""Signed webhooks to partners' systems: payloads, signatures, delivery with retries, a log.

Signature: ``X-Fairlead-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`` over
``f"{t}.".encode() + body`` with the partner's secret (the scheme Stripe and
others use: the timestamp is signed, so a captured request cannot be replayed
after the tolerance window).  Several ``v1=`` entries may appear while a secret
is being rotated; one match is enough.

Delivery: POST the JSON body; 2xx is delivered; a transport error (refused,
reset, timeout) or status 408, 425, 429 or 5xx is retried after an exponential
backoff (``base_delay_s × factor^(attempt−1)``, capped, optionally jittered, at
least the receiver's ``Retry-After``); any other status is final (the receiver
said no).  Every attempt is a :class:`DeliveryAttempt` appended to a
:class:`DeliveryLog`, which the service stores in its database; sleep and clock
are injected so tests drive the waits without waiting.

Destinations: before every attempt the URL is checked against the
:class:`~service.lifecycle.destinations.DestinationPolicy`, DNS included, so a
name rebound to a private address since it was subscribed is caught.  A
refused destination is not contacted and the attempt is final (``failed``,
with the reason); a host that does not resolve is retried like a refused
connection.  The POST goes to the addresses that were checked (the name in
``Host`` and in TLS SNI), never to those of a second lookup.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, Protocol

import httpx

from allocator.errors import InputError, InputProblem
from service.lifecycle.clock import Clock, SystemClock, require_aware
from service.lifecycle.destinations import (
    DestinationError,
    DestinationPolicy,
    Target,
    UnresolvedHostError,
)

SIGNATURE_HEADER = "X-Fairlead-Signature"
EVENT_HEADER = "X-Fairlead-Event"
DELIVERY_HEADER = "X-Fairlead-Delivery"
ATTEMPT_HEADER = "X-Fairlead-Attempt"
USER_AGENT = "fairlead-webhooks/0.1"

EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "offer_made": ("offer_id", "lead_id", "partner_id", "accept_by"),
    "offer_expiring": ("offer_id", "lead_id", "partner_id", "accept_by"),
    "lead_reclaimed": ("lead_id", "partner_id", "reason"),
    "lead_won": ("lead_id", "partner_id"),
}
"""Event types and the fields each payload must carry."""
EVENT_TYPES = tuple(EVENT_FIELDS)
# offers are blind until accepted: contact details never travel with an offer
BLIND_EVENTS = frozenset({"offer_made", "offer_expiring"})
CONTACT_FIELDS = ("contact_name", "contact_email", "contact_phone")
RETRY_STATUSES = frozenset({408, 425, 429})


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return require_aware("payload timestamp", value).isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


@dataclass(frozen=True)
class WebhookEvent:
    """One event to deliver; ``id`` doubles as the receiver's idempotency key."""

    id: str
    type: str
    created_at: datetime
    data: Mapping[str, Any]

    def body(self) -> bytes:
        """The JSON body, byte-for-byte what is signed and sent (sorted keys, compact)."""
        doc = {"id": self.id, "type": self.type, "created_at": self.created_at.isoformat(),
               "data": _jsonable(self.data)}
        return json.dumps(doc, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode()


def make_event(event_type: str, data: Mapping[str, Any], *, clock: Clock | None = None,
               event_id: str | None = None) -> WebhookEvent:
    """Build a validated event.

    Raises
    ------
    InputError
        Every problem at once: unknown type, missing fields, contact details in a
        blind event, values that are not JSON.
    """
    problems: list[InputProblem] = []
    if event_type not in EVENT_FIELDS:
        problems.append(InputProblem("webhook", None, "type", event_type,
                                     f"the event type must be one of {', '.join(EVENT_TYPES)}"))
    for name in EVENT_FIELDS.get(event_type, ()):
        if data.get(name) in (None, ""):
            problems.append(InputProblem("webhook", None, name, None,
                                         f"a '{event_type}' event needs '{name}'"))
    if event_type in BLIND_EVENTS:
        for name in CONTACT_FIELDS:
            if name in data:
                problems.append(InputProblem(
                    "webhook", None, name, "(hidden)",
                    f"a '{event_type}' event must not carry '{name}': offers are blind "
                    "until accepted"))
    try:
        json.dumps(_jsonable(data))
    except (TypeError, ValueError) as exc:
        problems.append(InputProblem("webhook", None, "data", None,
                                     f"the payload must be JSON-serializable ({exc})"))
    if problems:
        raise InputError(problems)
    now = (clock or SystemClock()).now()
    return WebhookEvent(event_id or f"evt_{uuid.uuid4().hex}", event_type, now, dict(data))


# -- signatures -----------------------------------------------------------------------------

class SignatureError(ValueError):
    """A webhook signature that does not verify, with the reason in words."""


def _key(secret: str | bytes) -> bytes:
    key = secret.encode() if isinstance(secret, str) else secret
    if not key:
        raise ValueError("The webhook secret must not be empty.")
    return key


def _digest(body: bytes, secret: str | bytes, timestamp: int) -> str:
    return hmac.new(_key(secret), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str | bytes, timestamp: int) -> str:
    """The ``X-Fairlead-Signature`` value for ``body`` sent at ``timestamp`` (unix seconds)."""
    return f"t={int(timestamp)},v1={_digest(body, secret, int(timestamp))}"


def verify_signature(
    body: bytes,
    header: str | None,
    secrets: str | bytes | Sequence[str | bytes],
    *,
    now: datetime | None = None,
    tolerance_s: float = 300.0,
) -> int:
    """Check a signature header against the raw body; returns its timestamp.

    Parameters
    ----------
    body : bytes
        The raw request body, exactly as received.
    header : str or None
        The ``X-Fairlead-Signature`` header.
    secrets : str, bytes or sequence of them
        The secret, or several during a rotation.
    now : datetime, optional
        Current time (aware); default the system clock.
    tolerance_s : float
        Largest accepted distance between the signed timestamp and ``now``.

    Raises
    ------
    SignatureError
        Missing or malformed header, timestamp outside the tolerance, or no match.
    """
    if not header:
        raise SignatureError(f"The {SIGNATURE_HEADER} header is missing.")
    ts: int | None = None
    sigs: list[str] = []
    for part in header.split(","):
        key, _, val = part.strip().partition("=")
        if key == "t" and val.isdigit():
            ts = int(val)
        elif key == "v1" and val:
            sigs.append(val)
    if ts is None or not sigs:
        raise SignatureError(f"The {SIGNATURE_HEADER} header must look like "
                             f"'t=<unix seconds>,v1=<hex>'. Got {header!r} instead.")
    current = require_aware("now", now).timestamp() if now else time.time()
    if abs(current - ts) > tolerance_s:
        raise SignatureError(f"The signature timestamp {ts} is {abs(current - ts):.0f} s from "
                             f"now, beyond the tolerance of {tolerance_s:g} s.")
    keys = [secrets] if isinstance(secrets, str | bytes) else list(secrets)
    for secret in keys:
        expected = _digest(body, secret, ts)
        if any(hmac.compare_digest(expected, s) for s in sigs):
            return ts
    raise SignatureError("The signature does not match the body for any known secret.")


# -- delivery -----------------------------------------------------------------------------

Outcome = Literal["delivered", "retry", "failed"]


@dataclass(frozen=True)
class DeliveryAttempt:
    """One POST of one event: what came back and what happens next."""

    event_id: str
    event_type: str
    url: str
    attempt: int
    sent_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: float
    outcome: Outcome
    next_attempt_in_s: float | None = None


class DeliveryLog(Protocol):
    """Where attempts are recorded; the service implements it on its database."""

    def append(self, attempt: DeliveryAttempt) -> None: ...


@dataclass
class MemoryDeliveryLog:
    """A :class:`DeliveryLog` in a list (tests, the CLI)."""

    attempts: list[DeliveryAttempt] = field(default_factory=list)

    def append(self, attempt: DeliveryAttempt) -> None:
        self.attempts.append(attempt)

    def for_event(self, event_id: str) -> list[DeliveryAttempt]:
        return [a for a in self.attempts if a.event_id == event_id]


@dataclass(frozen=True)
class DeliveryResult:
    """The outcome of :meth:`WebhookSender.deliver`: delivered or not, and every attempt."""

    event_id: str
    url: str
    delivered: bool
    attempts: tuple[DeliveryAttempt, ...]

    @property
    def last(self) -> DeliveryAttempt:
        return self.attempts[-1]


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff.

    Attributes
    ----------
    max_attempts : int
        Attempts in all, the first included.
    base_delay_s, factor, max_delay_s : float
        Wait before attempt ``k+1`` is ``min(max_delay_s, base_delay_s × factor^(k−1))``.
    jitter : float
        Fraction of the wait drawn at random (0 = none; 1 = "full jitter"), to
        spread retries of many events after an outage.
    timeout_s : float
        Per-request timeout.
    """

    max_attempts: int = 5
    base_delay_s: float = 1.0
    factor: float = 2.0
    max_delay_s: float = 300.0
    jitter: float = 0.0
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"The 'max_attempts' must be at least 1. "
                             f"Got {self.max_attempts!r} instead.")
        if self.base_delay_s < 0 or self.max_delay_s < 0 or self.factor < 1:
            raise ValueError("Backoff needs base_delay_s ≥ 0, max_delay_s ≥ 0 and factor ≥ 1. "
                             f"Got {self.base_delay_s!r}, {self.max_delay_s!r}, "
                             f"{self.factor!r} instead.")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"The 'jitter' must be between 0 and 1. Got {self.jitter!r} instead.")

    def delay_s(self, attempt: int, rng: random.Random | None = None) -> float:
        """Wait after failed attempt ``attempt`` (1-based) before the next one."""
        wait = min(self.max_delay_s, self.base_delay_s * self.factor ** (attempt - 1))
        if self.jitter and rng is not None:
            wait *= 1.0 - self.jitter * rng.random()
        return wait


def _retry_after(resp: httpx.Response) -> float | None:
    raw = resp.headers.get("Retry-After", "")
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


class WebhookSender:
    """Delivers events with signatures, retries and a log.

    Parameters
    ----------
    retry : RetryPolicy
    log : DeliveryLog, optional
        Receives every attempt; default an in-memory log (``sender.log``).
    client : httpx.Client, optional
        Default: a client of its own (closed by :meth:`close`), redirects not followed.
    sleep : callable
        ``sleep(seconds)``; inject ``FrozenClock.sleep`` or a recorder in tests.
    clock : Clock
        Source of the signed timestamps and of ``sent_at``.
    rng : random.Random, optional
        For jitter.
    destinations : DestinationPolicy, optional
        Where events may be sent; default: public addresses only.
    """

    def __init__(
        self,
        *,
        retry: RetryPolicy | None = None,
        log: DeliveryLog | None = None,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        destinations: DestinationPolicy | None = None,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self.log: DeliveryLog = log if log is not None else MemoryDeliveryLog()
        self._own_client = client is None
        self.client = client or httpx.Client(timeout=self.retry.timeout_s,
                                             follow_redirects=False)
        self.sleep = sleep
        self.clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.destinations = destinations or DestinationPolicy()

    def __enter__(self) -> WebhookSender:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._own_client:
            self.client.close()

    def _post(self, target: Target, body: bytes, secret: str | bytes, event: WebhookEvent,
              attempt: int) -> tuple[httpx.Response | None, str | None]:
        ts = int(self.clock.now().timestamp())
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                   SIGNATURE_HEADER: sign(body, secret, ts), EVENT_HEADER: event.type,
                   DELIVERY_HEADER: event.id, ATTEMPT_HEADER: str(attempt),
                   "Host": target.host_header}
        # TLS still verifies the certificate for the name: it is the SNI server name.
        extensions = {"sni_hostname": target.host} if target.url.scheme == "https" else {}
        error = "no address"
        # Like socket.create_connection: the next checked address when one refuses.
        for address in target.addresses:
            try:
                return self.client.post(target.pinned(address), content=body, headers=headers,
                                        timeout=self.retry.timeout_s,
                                        extensions=extensions), None
            except httpx.ConnectError as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            except httpx.TransportError as exc:
                return None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return None, error

    def deliver(self, url: str, secret: str | bytes, event: WebhookEvent) -> DeliveryResult:
        """POST ``event`` to ``url`` until delivered, refused, or out of attempts."""
        _key(secret)
        body = event.body()
        attempts: list[DeliveryAttempt] = []
        for k in range(1, self.retry.max_attempts + 1):
            sent_at = self.clock.now().astimezone(UTC)
            t0 = time.perf_counter()
            resp: httpx.Response | None = None
            refused = False
            try:
                target = self.destinations.check(url)
            except UnresolvedHostError as exc:
                error: str | None = str(exc)
            except DestinationError as exc:
                refused, error = True, f"not sent: {exc}"
            else:
                resp, error = self._post(target, body, secret, event, k)
            ms = (time.perf_counter() - t0) * 1e3
            code = resp.status_code if resp is not None else None
            if refused:
                outcome: Outcome = "failed"  # the policy will say no again: never retried
            elif code is not None and 200 <= code < 300:
                outcome = "delivered"
            elif code is None or code >= 500 or code in RETRY_STATUSES:
                outcome = "retry" if k < self.retry.max_attempts else "failed"
            else:
                outcome = "failed"
                error = (f"HTTP {code}: the receiver refused the event; not retried"
                         if code >= 400 else f"HTTP {code}: redirects are not followed")
            if code is not None and outcome != "delivered" and error is None:
                error = f"HTTP {code}"
            wait = None
            if outcome == "retry":
                wait = self.retry.delay_s(k, self.rng)
                hint = _retry_after(resp) if resp is not None else None
                if hint is not None:
                    wait = min(max(wait, hint), self.retry.max_delay_s)
            rec = DeliveryAttempt(event.id, event.type, url, k, sent_at, code, error,
                                  round(ms, 3), outcome, wait)
            attempts.append(rec)
            self.log.append(rec)
            if wait is None:
                break
            self.sleep(wait)
        return DeliveryResult(event.id, url, attempts[-1].outcome == "delivered",
                              tuple(attempts))
