"""The claim pool: leads nobody took, seen tier by tier, first eligible claim wins.

A pooled lead is visible (blind) to the first tier of its entry's cascade from
``pooled_at``, to the next tier ``step_hours`` later, and so on
(:func:`service.lifecycle.states.can_claim`).  A partner may claim it when its
tier sees it, it is among the lead's eligible partners, and it never declined
the lead.  The claim closes the entry with ``UPDATE ... WHERE closed_at IS NULL``
and inserts a live ``claimed`` assignment in the same transaction: of two
partners claiming at once, one update matches and the other gets a 409 — and
the live-assignment index would refuse a second holder anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from allocator.policy import PoolPolicy
from service.db import audit, room
from service.db.offers import LifecycleConflictError
from service.db.reroute import Actor
from service.db.rounds import DECLINED_STATES
from service.db.tables import Assignment, Lead, Partner, PoolEntry, RoundCandidates
from service.lifecycle.states import can_claim, contact_deadline, tier_visible_at, visible_tiers


@dataclass(frozen=True)
class Pooled:
    """An open pool entry, its lead, and who sees it now."""

    entry: PoolEntry
    lead: Lead
    visible_tiers: tuple[str, ...]
    next_tier_at: datetime | None
    eligible: tuple[str, ...]
    declined: tuple[str, ...]


def _policy(entry: PoolEntry) -> PoolPolicy:
    return PoolPolicy(cascade=tuple(entry.cascade), step_hours=float(entry.step_hours))


def _visible(entry: PoolEntry, now: datetime) -> tuple[tuple[str, ...], datetime | None]:
    pool = _policy(entry)
    if not pool.cascade:
        return (), None
    tiers = visible_tiers(entry.pooled_at, now, pool)
    if len(tiers) >= len(pool.cascade):
        return tiers, None
    return tiers, tier_visible_at(pool.cascade[len(tiers)], entry.pooled_at, pool)


def open_pool(session: Session, now: datetime,
              lead_id: str | None = None) -> list[Pooled]:
    """Open entries whose lead no assignment holds, oldest first, with who may see them."""
    live = sa.select(Assignment.lead_id).where(Assignment.live)
    query = (sa.select(PoolEntry, Lead).join(Lead, PoolEntry.lead_id == Lead.lead_id)
             .where(PoolEntry.closed_at.is_(None), PoolEntry.lead_id.not_in(live))
             .order_by(PoolEntry.pooled_at, PoolEntry.id))
    if lead_id is not None:
        query = query.where(PoolEntry.lead_id == lead_id)
    rows = session.execute(query).all()
    ids = [e.lead_id for e, _ in rows]
    eligible: dict[str, tuple[int, list[str]]] = {}
    declined: dict[str, set[str]] = {}
    for start in range(0, len(ids), 900):
        chunk = ids[start:start + 900]
        for lid, rid, pids in session.execute(
                sa.select(RoundCandidates.lead_id, RoundCandidates.round_id,
                          RoundCandidates.partner_ids)
                .where(RoundCandidates.lead_id.in_(chunk))):
            if lid not in eligible or rid > eligible[lid][0]:
                eligible[lid] = (int(rid), [str(p) for p in pids])
        for lid, pid in session.execute(
                sa.select(Assignment.lead_id, Assignment.partner_id)
                .where(Assignment.lead_id.in_(chunk), Assignment.state.in_(DECLINED_STATES))):
            declined.setdefault(lid, set()).add(pid)
    out = []
    for entry, lead in rows:
        tiers, next_at = _visible(entry, now)
        out.append(Pooled(entry, lead, tiers, next_at,
                          tuple(eligible.get(entry.lead_id, (0, []))[1]),
                          tuple(sorted(declined.get(entry.lead_id, set())))))
    return out


def why_not(pooled: Pooled, partner: Partner, now: datetime) -> str | None:
    """Why ``partner`` may not claim the pooled lead now, or ``None`` when it may."""
    lead = pooled.entry.lead_id
    if not partner.active:
        return f"partner {partner.partner_id!r} is inactive"
    if partner.partner_id in pooled.declined:
        return (f"partner {partner.partner_id!r} rejected lead {lead!r}, let its offer expire "
                "or had it reclaimed")
    if partner.partner_id not in pooled.eligible:
        return f"partner {partner.partner_id!r} is not among the eligible partners of {lead!r}"
    pool = _policy(pooled.entry)
    if pool.cascade and not can_claim(partner.tier, pooled.entry.pooled_at, now, pool):
        opens = tier_visible_at(partner.tier, pooled.entry.pooled_at, pool)
        return (f"lead {lead!r} is visible to tier {partner.tier!r} from {opens.isoformat()} "
                f"(pool cascade {', '.join(pool.cascade)}, one tier every "
                f"{pool.step_hours:g} h from {pooled.entry.pooled_at.isoformat()})")
    return None


def visible_to(session: Session, partner: Partner, now: datetime) -> list[Pooled]:
    """The pooled leads ``partner`` may claim now."""
    return [p for p in open_pool(session, now) if why_not(p, partner, now) is None]


def claim(session: Session, lead_id: str, partner: Partner, now: datetime,
          actor: Actor) -> Assignment:
    """Give the pooled lead to ``partner`` as a ``claimed`` assignment (caller commits).

    Raises
    ------
    LookupError
        The lead was never pooled.
    LifecycleConflictError
        The partner may not claim it (tier not yet reached, not eligible, declined
        it before), or it left the pool (another partner claimed it first).
    """
    found = open_pool(session, now, lead_id)
    if not found:
        last = session.scalars(sa.select(PoolEntry).where(PoolEntry.lead_id == lead_id)
                               .order_by(PoolEntry.id.desc()).limit(1)).first()
        if last is None:
            raise LookupError(f"Lead {lead_id!r} is not in the claim pool.")
        taken = ("claimed by another partner" if last.outcome == "claimed"
                 else "offered to a partner again")
        raise LifecycleConflictError(f"Lead {lead_id!r} is no longer in the claim pool: it was "
                                     f"{taken}.", [lead_id])
    pooled = found[0]
    refused = why_not(pooled, partner, now)
    if refused is not None:
        raise LifecycleConflictError(f"Cannot claim lead {lead_id!r}: {refused}.", [lead_id])
    closed = session.execute(
        sa.update(PoolEntry)
        .where(PoolEntry.id == pooled.entry.id, PoolEntry.closed_at.is_(None))
        .values(closed_at=now, outcome="claimed", claimed_by=partner.partner_id)
        .execution_options(synchronize_session=False))
    if closed.rowcount != 1:  # type: ignore[attr-defined]
        raise LifecycleConflictError(f"Lead {lead_id!r} was claimed by another partner first.",
                                [lead_id])
    return _claimed(session, pooled, partner, now, actor)


def _claimed(session: Session, pooled: Pooled, partner: Partner, now: datetime,
             actor: Actor) -> Assignment:
    lead = pooled.lead
    round_id = room.latest_round_id(session) or pooled.entry.round_id
    policy = room.round_policy(session, round_id)
    _, scores = room.candidates(session, lead.lead_id)
    score = scores.get(partner.partner_id, 0.0)
    units = float(lead.effort or 1.0)
    done = session.scalar(sa.select(sa.func.max(Assignment.reroutes))
                          .where(Assignment.lead_id == lead.lead_id)) or 0
    room.take(session, round_id, partner.partner_id, units, enforce=False)
    tiers = ", ".join(pooled.visible_tiers) or "every tier"
    reason = (f"claimed from the pool by {partner.partner_id} (tier {partner.tier}), pooled "
              f"{(now - pooled.entry.pooled_at).total_seconds() / 3600:.1f} h earlier; "
              f"visible to {tiers}")
    a = Assignment(round_id=round_id, lead_id=lead.lead_id, partner_id=partner.partner_id,
                   score=score, rank=1 + sum(1 for s in scores.values() if s > score),
                   reason=reason, explanation={"origin": "claim",
                                               "pool_entry_id": pooled.entry.id},
                   state="claimed", live=True, created_at=now, updated_at=now, state_at=now,
                   accepted_at=now, due_at=contact_deadline(now, policy.sla), origin="claim",
                   reroutes=int(done), units=units)
    session.add(a)
    session.flush()
    audit.record(session, actor=actor.name, actor_role=actor.role, action="pool.claimed",
                 entity_type="assignment", entity_id=str(a.id), round_id=round_id,
                 lead_id=lead.lead_id, partner_id=partner.partner_id, reason=reason, at=now,
                 detail={"pool_entry_id": pooled.entry.id, "tier": partner.tier})
    return a
