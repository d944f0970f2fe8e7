"""The periodic SLA job: expire unaccepted offers, reclaim uncontacted leads, warn before expiry.

Safe with several workers (service processes, cron) at once:

* **PostgreSQL** — each step claims one due assignment with ``SELECT ... FOR
  UPDATE SKIP LOCKED``: workers take different rows and never wait on each
  other; the row stays locked until its transaction (the expiry, the room given
  back, the re-route, the audit entries) commits.
* **SQLite** — one writer at a time; the move is a conditional ``UPDATE ...
  WHERE id = :id AND state = :seen AND due_at <= :now``, so of two workers that
  picked the same row one updates it and the other's update matches nothing
  and it moves on.  The same conditional update runs on PostgreSQL too, so a
  step is idempotent on both.

Each assignment is one short transaction (locks held for milliseconds, a
failure touches one lead).  ``now`` comes from the caller's clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from service.db import offers, outbox
from service.db.reroute import SWEEP, Actor
from service.db.tables import Assignment, Lead
from service.lifecycle.clock import Clock
from service.lifecycle.states import IllegalTransition, LeadEvent, LeadState

_EVENTS = {LeadState.OFFERED.value: LeadEvent.EXPIRE,
           LeadState.ACCEPTED.value: LeadEvent.RECLAIM,
           LeadState.CLAIMED.value: LeadEvent.RECLAIM}


@dataclass
class SweepReport:
    """What one sweep did."""

    now: datetime
    expired: int = 0
    reclaimed: int = 0
    rerouted: int = 0
    pooled: int = 0
    warned: int = 0
    skipped: int = 0
    lead_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"now": self.now.isoformat(), "expired": self.expired,
                "reclaimed": self.reclaimed, "rerouted": self.rerouted, "pooled": self.pooled,
                "warned": self.warned, "skipped": self.skipped}


def _claim_due(session: Session, now: datetime, skip: set[int]) -> Assignment | None:
    query = (sa.select(Assignment)
             .where(Assignment.live, Assignment.due_at.is_not(None), Assignment.due_at <= now,
                    Assignment.state.in_(tuple(_EVENTS)))
             .order_by(Assignment.due_at, Assignment.id).limit(1))
    if skip:
        query = query.where(Assignment.id.not_in(skip))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return session.scalars(query).first()


def _reason(a: Assignment, event: LeadEvent) -> str:
    assert a.due_at is not None
    since = a.state_at.isoformat()
    if event is LeadEvent.EXPIRE:
        return (f"not accepted by the deadline {a.due_at.isoformat()} "
                f"(offered {since}; sla.accept_within_hours)")
    return (f"no contact reported by the deadline {a.due_at.isoformat()} "
            f"({a.state} {since}; sla.contact_within_hours)")


def _step(session: Session, now: datetime, report: SweepReport, skip: set[int],
          actor: Actor) -> bool:
    a = _claim_due(session, now, skip)
    if a is None:
        return False
    event = _EVENTS[a.state]
    try:
        moved = offers.end(session, a, event, now, actor, _reason(a, event))
    except IllegalTransition:  # another worker moved it first (SQLite: same row picked)
        session.rollback()
        report.skipped += 1
        skip.add(a.id)
        return True
    session.commit()
    if event is LeadEvent.EXPIRE:
        report.expired += 1
    else:
        report.reclaimed += 1
    report.lead_ids.append(a.lead_id)
    assert moved.rerouted is not None
    if moved.rerouted.action == "offer":
        report.rerouted += 1
    else:
        report.pooled += 1
    return True


def _warn(session: Session, now: datetime, horizon: timedelta) -> int:
    """Send ``offer_expiring`` once for offers whose accept deadline is within ``horizon``."""
    subs = outbox.active_subscribers(session)
    if not outbox.wants(subs, "offer_expiring"):
        return 0
    query = (sa.select(Assignment, Lead).join(Lead, Assignment.lead_id == Lead.lead_id)
             .where(Assignment.live, Assignment.state == "offered",
                    Assignment.warned_at.is_(None), Assignment.due_at > now,
                    Assignment.due_at <= now + horizon)
             .order_by(Assignment.due_at).limit(500))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(of=Assignment, skip_locked=True)
    events = []
    for a, lead in session.execute(query).all():
        done = session.execute(
            sa.update(Assignment).where(Assignment.id == a.id, Assignment.warned_at.is_(None),
                                        Assignment.state == "offered")
            .values(warned_at=now).execution_options(synchronize_session=False))
        if done.rowcount == 1:  # type: ignore[attr-defined]
            events.append(outbox.PendingEvent("offer_expiring", a.partner_id,
                                              outbox.offer_data(a.id, lead, a.partner_id,
                                                                a.due_at)))
    outbox.enqueue(session, events, now, subs)
    session.commit()
    return len(events)


def sweep(sessions: sessionmaker[Session], clock: Clock, *, max_items: int = 10_000,
          warn_within_hours: float | None = 4.0, actor: Actor = SWEEP,
          on_step: Callable[[SweepReport], None] | None = None) -> SweepReport:
    """Run one pass of the SLA job at ``clock.now()``.

    Parameters
    ----------
    sessions : sessionmaker
    clock : Clock
        The time the deadlines are compared with (a FrozenClock in tests).
    max_items : int
        Most assignments handled in this pass (the next pass continues).
    warn_within_hours : float or None
        Send ``offer_expiring`` for offers due within this many hours; ``None``: never.
    actor : Actor
        Recorded in the audit log.
    on_step : callable, optional
        Called with the report after each assignment handled (tests check invariants).

    Returns
    -------
    SweepReport
    """
    now = clock.now()
    report = SweepReport(now)
    skip: set[int] = set()
    with sessions() as session:
        for _ in range(max_items):
            if not _step(session, now, report, skip, actor):
                break
            if on_step is not None:
                on_step(report)
        if warn_within_hours is not None:
            report.warned = _warn(session, now, timedelta(hours=warn_within_hours))
    return report
