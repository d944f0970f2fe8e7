"""Webhook subscriptions, the outbox of events to deliver, and the delivery log on disk.

Events are written to ``webhook_outbox`` in the transaction that caused them
(an offer stored, a lead reclaimed, a lead won): if that transaction rolls
back, no event goes out; if it commits, the event is delivered later by
:func:`service.notify.deliver_pending`, whoever runs it (the service's
background job or ``fairlead sweep``).  One row per event and subscription;
the event id is shared, so a receiver subscribed twice can de-duplicate.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from allocator.errors import InputError, InputProblem
from service.db.tables import WebhookDelivery, WebhookOutbox, WebhookSubscription
from service.lifecycle.destinations import (
    DestinationError,
    DestinationPolicy,
    UnresolvedHostError,
    redact,
    url_problems,
)
from service.lifecycle.webhooks import EVENT_TYPES, DeliveryAttempt, make_event


@dataclass(frozen=True)
class _At:
    """A clock stopped at one moment (events carry the time of the change that made them)."""

    when: datetime

    def now(self) -> datetime:
        return self.when


@dataclass(frozen=True)
class PendingEvent:
    """An event to enqueue: its type, the partner it concerns, and its payload."""

    event_type: str
    partner_id: str | None
    data: Mapping[str, Any]


#: Lead fields an offer event carries: enough to decide, never who to call.
BLIND_LEAD_FIELDS = ("region", "country", "vertical", "product", "company_size", "intent")


def offer_data(offer_id: int, lead: Any, partner_id: str, accept_by: datetime | None,
               **extra: Any) -> dict[str, Any]:
    """The payload of ``offer_made`` / ``offer_expiring``: the offer and the blind lead."""
    return {"offer_id": offer_id, "lead_id": lead.lead_id, "partner_id": partner_id,
            "accept_by": accept_by,
            "lead": {f: getattr(lead, f) for f in BLIND_LEAD_FIELDS}, **extra}


def check_subscription(url: str, events: Sequence[str],
                       destinations: DestinationPolicy | None = None) -> list[str]:
    """The events of a new subscription, de-duplicated, after checking ``url`` and names.

    Parameters
    ----------
    url : str
    events : sequence of str
    destinations : DestinationPolicy, optional
        Where webhooks may go (default: public addresses only); the host is
        resolved now, so a name without an address is refused too.

    Raises
    ------
    InputError
        Every problem at once: a URL that breaks the rules (http(s), a host, no
        credentials, a valid port), a destination the policy refuses (with the
        address and the setting that would allow it), an unknown event.
    """
    problems: list[InputProblem] = []
    url_rules = url_problems(url)
    if url_rules:
        problems += [InputProblem("webhook", None, "url", redact(url), rule)
                     for rule in url_rules]
    else:
        try:
            (destinations or DestinationPolicy()).check(url)
        except UnresolvedHostError as exc:
            problems.append(InputProblem("webhook", None, "url", url,
                                         f"{exc}; subscribe a host that resolves"))
        except DestinationError as exc:
            problems.append(InputProblem("webhook", None, "url", url, str(exc)))
    if not events:
        problems.append(InputProblem("webhook", None, "events", [],
                                     "name at least one event: " + ", ".join(EVENT_TYPES)))
    for name in events:
        if name not in EVENT_TYPES:
            problems.append(InputProblem("webhook", None, "events", name,
                                         "the event must be one of " + ", ".join(EVENT_TYPES)))
    if problems:
        raise InputError(problems)
    return list(dict.fromkeys(events))


def subscribe(session: Session, partner_id: str | None, url: str, events: Sequence[str],
              created_by: str, now: datetime,
              destinations: DestinationPolicy | None = None) -> WebhookSubscription:
    """Store a subscription with a fresh signing secret (the caller commits and shows it once).

    ``destinations`` is the policy ``url`` must pass (see :func:`check_subscription`).
    """
    row = WebhookSubscription(partner_id=partner_id, url=url,
                              secret=f"whsec_{secrets.token_urlsafe(32)}",
                              events=check_subscription(url, events, destinations),
                              active=True, created_at=now, created_by=created_by)
    session.add(row)
    session.flush()
    return row


def subscriptions(session: Session, partner_id: str | None = None, *,
                  only_partner: bool = False, include_deleted: bool = False
                  ) -> Sequence[WebhookSubscription]:
    """Subscriptions by id; ``only_partner`` keeps those of ``partner_id`` (not ops')."""
    query = sa.select(WebhookSubscription).order_by(WebhookSubscription.id)
    if only_partner:
        query = query.where(WebhookSubscription.partner_id == partner_id)
    if not include_deleted:
        query = query.where(WebhookSubscription.active)
    return session.scalars(query).all()


def active_subscribers(session: Session) -> list[WebhookSubscription]:
    return list(session.scalars(sa.select(WebhookSubscription)
                                .where(WebhookSubscription.active)))


def wants(subs: Iterable[WebhookSubscription], event_type: str) -> bool:
    """Whether any of ``subs`` listens to ``event_type``."""
    return any(event_type in (s.events or ()) for s in subs)


def enqueue(session: Session, events: Sequence[PendingEvent], now: datetime,
            subs: Sequence[WebhookSubscription] | None = None) -> int:
    """Write ``events`` to the outbox for every active subscription that wants them.

    A partner's subscriptions get the events about that partner; ops'
    subscriptions (no partner) get every event.  Returns the rows written.
    """
    if not events:
        return 0
    subs = active_subscribers(session) if subs is None else subs
    if not subs:
        return 0
    rows: list[dict[str, Any]] = []
    for pending in events:
        targets = [s for s in subs if pending.event_type in (s.events or ())
                   and (s.partner_id is None or s.partner_id == pending.partner_id)]
        if not targets:
            continue
        event = make_event(pending.event_type, dict(pending.data), clock=_At(now),
                           event_id=f"evt_{uuid.uuid4().hex}")
        body = json.loads(event.body())["data"]  # as it will be sent: timestamps in ISO
        rows += [{"event_id": event.id, "subscription_id": s.id, "event_type": event.type,
                  "created_at": now, "data": body, "status": "pending", "attempts": 0}
                 for s in targets]
    if rows:
        session.execute(sa.insert(WebhookOutbox), rows)
    return len(rows)


class DbDeliveryLog:
    """A :class:`~service.lifecycle.webhooks.DeliveryLog` writing each attempt to the database.

    Each attempt is committed on its own, so the log survives a worker that dies
    between retries.
    """

    def __init__(self, sessions: sessionmaker[Session], subscription_id: int) -> None:
        self.sessions = sessions
        self.subscription_id = subscription_id

    def append(self, attempt: DeliveryAttempt) -> None:
        with self.sessions() as session:
            session.add(WebhookDelivery(
                subscription_id=self.subscription_id, event_id=attempt.event_id,
                event_type=attempt.event_type, url=attempt.url, attempt=attempt.attempt,
                sent_at=attempt.sent_at, status_code=attempt.status_code, error=attempt.error,
                duration_ms=attempt.duration_ms, outcome=attempt.outcome,
                next_attempt_in_s=attempt.next_attempt_in_s))
            session.commit()


def deliveries(session: Session, subscription_id: int, offset: int = 0,
               limit: int = 100) -> tuple[int, Sequence[WebhookDelivery]]:
    where = WebhookDelivery.subscription_id == subscription_id
    total = session.scalar(sa.select(sa.func.count()).select_from(WebhookDelivery).where(where))
    rows = session.scalars(sa.select(WebhookDelivery).where(where)
                           .order_by(WebhookDelivery.id).offset(offset).limit(limit)).all()
    return int(total or 0), rows
