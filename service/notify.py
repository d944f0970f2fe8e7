"""Delivering the webhook outbox: signed POSTs with retries, every attempt logged in the database.

Several workers may deliver at once.  A worker leases one outbox row at a time
(``status = 'sending'`` until ``lease_until``): on PostgreSQL the row is picked
with ``FOR UPDATE SKIP LOCKED``, on SQLite with a conditional ``UPDATE ...
WHERE status = 'pending'`` — either way one worker sends each event.  A worker
that dies mid-delivery leaves a lease that runs out, and the event is sent
again (receivers de-duplicate on the event id, ``X-Fairlead-Delivery``).
Retries and their backoff are :class:`~service.lifecycle.webhooks.WebhookSender`'s,
and so is the destination check before each attempt (a URL whose host now
resolves to a refused address is not sent: the attempt is logged as failed);
each attempt is a row of ``webhook_deliveries``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from service.db.outbox import DbDeliveryLog
from service.db.tables import WebhookOutbox, WebhookSubscription
from service.lifecycle.clock import Clock
from service.lifecycle.destinations import DestinationPolicy
from service.lifecycle.webhooks import RetryPolicy, WebhookEvent, WebhookSender


@dataclass
class DispatchReport:
    delivered: int = 0
    failed: int = 0


def _claimable(now: datetime) -> sa.ColumnElement[bool]:
    return sa.or_(WebhookOutbox.status == "pending",
                  sa.and_(WebhookOutbox.status == "sending", WebhookOutbox.lease_until < now))


def _lease(session: Session, now: datetime, lease: timedelta) -> WebhookOutbox | None:
    query = (sa.select(WebhookOutbox).where(_claimable(now))
             .order_by(WebhookOutbox.id).limit(1))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    row = session.scalars(query).first()
    if row is None:
        return None
    taken = session.execute(
        sa.update(WebhookOutbox).where(WebhookOutbox.id == row.id, _claimable(now))
        .values(status="sending", lease_until=now + lease)
        .execution_options(synchronize_session=False))
    session.commit()
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        return _lease(session, now, lease)  # another worker leased it first
    session.refresh(row)
    return row


def deliver_pending(sessions: sessionmaker[Session], clock: Clock, *,
                    retry: RetryPolicy | None = None,
                    sleep: Callable[[float], None] | None = None,
                    client: httpx.Client | None = None, max_events: int = 1000,
                    lease_s: float = 900.0,
                    destinations: DestinationPolicy | None = None) -> DispatchReport:
    """Deliver up to ``max_events`` pending events; returns how many went out or failed.

    Parameters
    ----------
    sessions : sessionmaker
    clock : Clock
        Signs the timestamps and stamps ``sent_at``.
    retry : RetryPolicy, optional
    sleep : callable, optional
        Waits between retries (``FrozenClock.sleep`` in tests; an interruptible
        wait in the service's background job).
    client : httpx.Client, optional
        Shared HTTP client (default: one for this call).
    max_events : int
    lease_s : float
        How long a worker holds an event before another may send it again.
    destinations : DestinationPolicy, optional
        Where events may be sent (``Settings.webhook_destinations()``); default:
        public addresses only.
    """
    report = DispatchReport()
    retry = retry or RetryPolicy()
    # made on the first event only: a client's TLS context costs tens of ms of CPU, which a
    # pass with nothing to send (the usual one, every few seconds) should not spend
    http = client
    try:
        with sessions() as session:
            for _ in range(max_events):
                row = _lease(session, clock.now(), timedelta(seconds=lease_s))
                if row is None:
                    break
                sub = session.get(WebhookSubscription, row.subscription_id)
                assert sub is not None
                delivered, attempts = False, 0
                if sub.active:
                    if http is None:
                        http = httpx.Client(timeout=retry.timeout_s, follow_redirects=False)
                    sender = WebhookSender(retry=retry, log=DbDeliveryLog(sessions, sub.id),
                                           client=http, clock=clock,
                                           sleep=sleep or time.sleep,
                                           destinations=destinations)
                    event = WebhookEvent(row.event_id, row.event_type, row.created_at,
                                         dict(row.data))
                    result = sender.deliver(sub.url, sub.secret, event)
                    delivered, attempts = result.delivered, len(result.attempts)
                session.execute(
                    sa.update(WebhookOutbox).where(WebhookOutbox.id == row.id)
                    .values(status="delivered" if delivered else "failed",
                            attempts=WebhookOutbox.attempts + attempts,
                            finished_at=clock.now(), lease_until=None)
                    .execution_options(synchronize_session=False))
                session.commit()
                if delivered:
                    report.delivered += 1
                else:
                    report.failed += 1
    finally:
        if client is None and http is not None:
            http.close()
    return report
