"""An offer's life in the database: accept, reject, dispositions, expiry and reclaim.

Every move is :func:`service.lifecycle.states.transition` (an illegal one raises
:class:`~service.lifecycle.states.IllegalTransition`, the API's 409 naming the
allowed events) followed by a conditional ``UPDATE ... WHERE id = :id AND state =
:seen``: when two requests (or a request and the sweep) move the same offer at
once, exactly one update matches and the other is told the state it lost to.
A move that ends an offer (reject, expire, reclaim) gives the partner's room
back and re-routes the lead in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from allocator.policy import SlaPolicy
from service.db import audit, outbox, outcomes, room
from service.db.reroute import Actor, Rerouted, reroute
from service.db.tables import Assignment, Lead
from service.lifecycle.states import (
    IllegalTransition,
    LeadEvent,
    LeadState,
    Reason,
    contact_deadline,
    transition,
)

S, E = LeadState, LeadEvent
ENDED = frozenset({S.REJECTED, S.EXPIRED, S.RECLAIMED})
#: Dispositions a partner reports after accepting, and the event each one is.
DISPOSITIONS: dict[str, LeadEvent] = {"contacted": E.CONTACT, "qualified": E.QUALIFY,
                                      "opportunity": E.OPEN_OPPORTUNITY, "won": E.WIN,
                                      "lost": E.LOSE}
_WORKED = frozenset({S.CONTACTED, S.QUALIFIED, S.OPPORTUNITY, S.WON, S.LOST})


class LifecycleConflictError(Exception):
    """A move the lead's state allows but its deadline or owner does not (HTTP 409)."""

    def __init__(self, detail: str, ids: list[str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.ids = ids or []


@dataclass(frozen=True)
class Moved:
    """An offer after a move, and where its lead went when the move ended it."""

    assignment: Assignment
    state: LeadState
    rerouted: Rerouted | None = None


def _values(a: Assignment, new: LeadState, now: datetime, sla: SlaPolicy) -> dict[str, Any]:
    values: dict[str, Any] = {"state": new.value, "state_at": now, "updated_at": now}
    if new in ENDED:
        values.update(live=False, due_at=None, closed_at=now)
    elif new is S.ACCEPTED:
        values.update(accepted_at=now, due_at=contact_deadline(now, sla))
    elif new in _WORKED:
        values["due_at"] = None
        if a.contacted_at is None:
            values["contacted_at"] = now
        if new in (S.WON, S.LOST):
            values["closed_at"] = now
    return values


def move(session: Session, a: Assignment, event: LeadEvent, now: datetime,
         **extra: Any) -> LeadState:
    """Apply ``event`` to ``a`` with a conditional update (the caller commits).

    Raises
    ------
    IllegalTransition
        The event is not allowed from the state, or another request moved the
        offer first (then from the state it moved it to).
    """
    seen = LeadState(a.state)
    new = transition(seen, event)
    values = {**_values(a, new, now, room.round_policy(session, a.round_id).sla), **extra}
    result = session.execute(
        sa.update(Assignment)
        .where(Assignment.id == a.id, Assignment.state == seen.value, Assignment.live == a.live)
        .values(**values).execution_options(synchronize_session=False))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(a)
        raise IllegalTransition(LeadState(a.state), event)
    for key, value in values.items():
        set_committed_value(a, key, value)
    return new


def _check_deadline(a: Assignment, now: datetime, what: str) -> None:
    if a.due_at is not None and now >= a.due_at:
        raise LifecycleConflictError(
            f"Cannot {what} assignment {a.id}: its deadline passed at "
            f"{a.due_at.isoformat()} (now {now.isoformat()}); the sweep "
            f"{'expires' if a.state == S.OFFERED else 'reclaims'} it and re-routes the lead.",
            [str(a.id)])


def _record(session: Session, a: Assignment, action: str, actor: Actor, now: datetime,
            reason: str | None = None, **detail: Any) -> None:
    audit.record(session, actor=actor.name, actor_role=actor.role, action=action,
                 entity_type="assignment", entity_id=str(a.id), round_id=a.round_id,
                 lead_id=a.lead_id, partner_id=a.partner_id, reason=reason, at=now,
                 detail=detail)


def accept(session: Session, a: Assignment, now: datetime, actor: Actor) -> Moved:
    """The partner takes the offer: contact details open up, the contact SLA starts."""
    transition(a.state, E.ACCEPT)
    _check_deadline(a, now, "accept")
    state = move(session, a, E.ACCEPT, now)
    _record(session, a, "offer.accepted", actor, now,
            f"accepted {(now - a.created_at).total_seconds() / 3600:.1f} h after the offer; "
            f"contact due by {a.due_at.isoformat() if a.due_at else '-'}")
    return Moved(a, state)


def end(session: Session, a: Assignment, event: LeadEvent, now: datetime, actor: Actor,
        reason: str, **extra: Any) -> Moved:
    """End an offer (reject, expire, reclaim): room back, audit, re-route the lead."""
    partner = a.partner_id
    state = move(session, a, event, now, **extra)
    room.release(session, a)
    action = {S.REJECTED: "offer.rejected", S.EXPIRED: "offer.expired",
              S.RECLAIMED: "offer.reclaimed"}[state]
    _record(session, a, action, actor, now, reason)
    if state is S.RECLAIMED:
        outbox.enqueue(session, [outbox.PendingEvent(
            "lead_reclaimed", partner,
            {"lead_id": a.lead_id, "partner_id": partner, "offer_id": a.id,
             "reason": reason})], now)
    return Moved(a, state, reroute(session, a, now, actor))


def reject(session: Session, a: Assignment, reason: Reason, now: datetime,
           actor: Actor) -> Moved:
    """The partner declines the offer with a coded reason; the lead moves on at once."""
    transition(a.state, E.REJECT)
    return end(session, a, E.REJECT, now, actor, f"rejected: {reason}",
               reason_code=reason.code, reason_text=reason.text)


def dispose(session: Session, a: Assignment, disposition: str, now: datetime, actor: Actor,
            reason: Reason | None = None, note: str | None = None) -> Moved:
    """Record how the lead is going (contacted ... won, lost); won and lost become history.

    Raises
    ------
    IllegalTransition
        The disposition is not allowed from the lead's state.
    LifecycleConflictError
        The first contact comes after the contact deadline (the lead is due back).
    """
    event = DISPOSITIONS[disposition]
    transition(a.state, event)
    if a.state in (S.ACCEPTED, S.CLAIMED):
        _check_deadline(a, now, f"report '{disposition}' for")
    extra: dict[str, Any] = {}
    if disposition == "lost":
        assert reason is not None, "a lost lead needs a reason"
        extra = {"reason_code": reason.code, "reason_text": reason.text}
    state = move(session, a, event, now, **extra)
    text = str(reason) if reason is not None else None
    if note:
        text = f"{text}; {note}" if text else note
    _record(session, a, f"disposition.{disposition}", actor, now, text)
    if state in (S.WON, S.LOST):
        lead = session.get(Lead, a.lead_id)
        assert lead is not None
        outcomes.record_outcome(session, a, lead, converted=state is S.WON, now=now)
    if state is S.WON:
        outbox.enqueue(session, [outbox.PendingEvent(
            "lead_won", a.partner_id,
            {"lead_id": a.lead_id, "partner_id": a.partner_id, "offer_id": a.id})], now)
    return Moved(a, state)
