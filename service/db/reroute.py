"""Where a lead goes when its offer fails: the next partner, or the claim pool.

Called in the transaction that ended the failed assignment (a reject, or the
sweep expiring or reclaiming it), after it stopped being live, so the lead's
single live assignment moves in one commit and the partial unique index holds
at every step.  The rule is :func:`service.lifecycle.states.next_partner`: the
best ``score − price`` among the lead's eligible partners with room, never one
that declined it, scores from the newest round that scored the lead (no
re-scoring) and prices and room from the latest round; after
``sla.max_reroutes`` re-routes, or with nobody left, the lead goes to the pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from allocator.policy import Policy
from service.db import audit, outbox, room
from service.db.tables import Assignment, Lead, Partner, PoolEntry
from service.lifecycle.states import Reroute, accept_deadline, next_partner


@dataclass(frozen=True)
class Actor:
    """Who made a change, for the audit log."""

    name: str
    role: str | None = None


SWEEP = Actor("sweep", "system")


@dataclass(frozen=True)
class Rerouted:
    """What became of a lead whose offer failed."""

    action: Literal["offer", "pool"]
    reason: str
    assignment: Assignment | None = None
    pool_entry: PoolEntry | None = None


def _active(session: Session, ids: list[str]) -> set[str]:
    if not ids:
        return set()
    return set(session.scalars(sa.select(Partner.partner_id).where(
        Partner.active, Partner.partner_id.in_(ids))))


def pool_lead(session: Session, lead_id: str, round_id: int, policy: Policy, reason: str,
              now: datetime, actor: Actor) -> PoolEntry:
    """Put a lead in the claim pool under ``policy``'s cascade (seen tier by tier)."""
    entry = PoolEntry(lead_id=lead_id, round_id=round_id, pooled_at=now,
                      cascade=list(policy.pool.cascade), step_hours=policy.pool.step_hours,
                      reason=reason)
    session.add(entry)
    session.flush()
    first = policy.pool.cascade[0] if policy.pool.cascade else "every tier"
    audit.record(session, actor=actor.name, actor_role=actor.role, action="lead.pooled",
                 entity_type="pool_entry", entity_id=str(entry.id), round_id=round_id,
                 lead_id=lead_id, reason=reason, at=now,
                 detail={"cascade": list(policy.pool.cascade),
                         "step_hours": policy.pool.step_hours, "first_tier": first})
    return entry


def reroute(session: Session, failed: Assignment, now: datetime, actor: Actor) -> Rerouted:
    """Offer the lead of ``failed`` (no longer live) to the next partner, or pool it.

    Returns
    -------
    Rerouted
        The new assignment (``offered``, due under the latest round's SLA) or the
        pool entry, with the reason in words naming the price that decided it.
    """
    lead = session.get(Lead, failed.lead_id)
    assert lead is not None, f"lead {failed.lead_id} of assignment {failed.id} is not stored"
    latest = room.latest_round_id(session) or failed.round_id
    policy = room.round_policy(session, latest)
    _, scores = room.candidates(session, lead.lead_id)
    active = _active(session, list(scores))
    scores = {p: s for p, s in scores.items() if p in active}
    declined = room.declined_by(session, lead.lead_id)
    rooms = room.room(session, latest)
    prices = {p: r.price for p, r in rooms.items()}
    free = {p: r.free_units for p, r in rooms.items()}
    units = float(lead.effort or 1.0)
    while True:
        choice = next_partner(scores, prices, declined, free, reroutes_done=failed.reroutes,
                              sla=policy.sla, units=units)
        if choice.action == "pool":
            entry = pool_lead(session, lead.lead_id, latest, policy, choice.reason, now, actor)
            return Rerouted("pool", choice.reason, pool_entry=entry)
        assert choice.partner_id is not None
        if room.take(session, latest, choice.partner_id, units):
            break
        free[choice.partner_id] = 0.0  # another worker took the last unit meanwhile
    new = _offer(session, failed, lead, latest, policy, choice, scores, declined, units, now,
                 actor)
    return Rerouted("offer", choice.reason, assignment=new)


def _offer(session: Session, failed: Assignment, lead: Lead, round_id: int, policy: Policy,
           choice: Reroute, scores: dict[str, float], declined: list[str], units: float,
           now: datetime, actor: Actor) -> Assignment:
    assert choice.partner_id is not None and choice.score is not None
    named = sorted((set(scores) | set(declined)) - {choice.partner_id})
    due = accept_deadline(now, policy.sla)
    new = Assignment(
        round_id=round_id, lead_id=lead.lead_id, partner_id=choice.partner_id,
        score=choice.score, rank=1 + sum(1 for s in scores.values() if s > choice.score),
        reason=choice.reason, state="offered", live=True, created_at=now, updated_at=now,
        state_at=now, due_at=due, origin="reroute", reroutes=choice.reroutes_done,
        previous_id=failed.id, units=units,
        explanation={"origin": "reroute", "price": choice.price,
                     "adjusted_value": choice.adjusted_value, "n_eligible": len(scores),
                     "reroutes": choice.reroutes_done, "named_partners": named},
    )
    session.add(new)
    session.flush()
    audit.record(session, actor=actor.name, actor_role=actor.role,
                 action="assignment.rerouted", entity_type="assignment",
                 entity_id=str(new.id), round_id=round_id, lead_id=lead.lead_id,
                 partner_id=choice.partner_id, reason=choice.reason, at=now,
                 detail={"previous_id": failed.id, "reroutes": choice.reroutes_done,
                         "score": choice.score, "price": choice.price,
                         "adjusted_value": choice.adjusted_value, "named_partners": named})
    outbox.enqueue(session, [outbox.PendingEvent(
        "offer_made", choice.partner_id,
        outbox.offer_data(new.id, lead, choice.partner_id, due, origin="reroute"))], now)
    return new
