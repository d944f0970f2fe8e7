"""Storing a round: one transaction, all of its assignments or none.

A round is planned from a snapshot (the leads without a live assignment) and
then stored.  Between the two another round may have taken some of those
leads; the partial unique index ``uq_assignments_live_lead`` then refuses the
insert, the whole transaction rolls back, and :class:`RoundConflictError`
names the leads taken.  The database decides, so this holds for any number of
workers and processes.  The round is not retried automatically: its optimum
was computed for leads that are no longer all free, so the caller re-runs it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from allocator.policy import Policy
from service.db import audit, outbox
from service.db.policies import load_stored, store_policy
from service.db.tables import (
    Assignment,
    Lead,
    Partner,
    PoolEntry,
    Round,
    RoundCandidates,
    RoundPartner,
    StoredPolicy,
)
from service.db.types import utcnow
from service.lifecycle.states import accept_deadline


class RoundConflictError(Exception):
    """Some planned leads were assigned by another round first; nothing was stored."""

    def __init__(self, lead_ids: Sequence[str], rounds: Sequence[int]) -> None:
        self.lead_ids = list(lead_ids)
        self.rounds = sorted(set(rounds))
        shown = ", ".join(self.lead_ids[:20]) + (" ..." if len(self.lead_ids) > 20 else "")
        taken_by = ", ".join(str(r) for r in self.rounds) or "another round"
        super().__init__(
            f"{len(self.lead_ids)} lead(s) of this round were assigned by round(s) {taken_by} "
            f"while it was being solved: {shown}. Nothing was stored; run the round again to "
            "allocate the leads still free."
        )


@dataclass(frozen=True)
class PlannedAssignment:
    lead_id: str
    partner_id: str
    score: float
    rank: int | None
    reason: str
    explanation: dict[str, Any]
    #: Partners the reason names besides the assignee (hidden from partner keys).
    named_partners: tuple[str, ...] = ()
    #: Capacity units the lead takes (its effort).
    units: float = 1.0


@dataclass(frozen=True)
class PlannedPartner:
    """A partner's capacity price and capacity units in the round (for later routing)."""

    partner_id: str
    price: float
    capacity_units: float


@dataclass(frozen=True)
class PlannedCandidates:
    """A lead's eligible partners in the round and their scores (re-routing reuses them)."""

    lead_id: str
    partner_ids: tuple[str, ...]
    scores: tuple[float, ...]


@dataclass(frozen=True)
class NewPolicy:
    """A policy given inline with the round, stored with it (and only if the round is)."""

    policy: Policy
    body: dict[str, Any]
    source_toml: str | None


@dataclass(frozen=True)
class RoundPlan:
    """A solved round, not yet stored.

    ``policy_id`` names a stored policy, or is ``None`` with ``new_policy`` set.
    Planning only reads, so no write lock is held while the solver runs.
    """

    policy_id: int | None
    lead_ids: tuple[str, ...]
    assignments: tuple[PlannedAssignment, ...]
    summary: dict[str, Any]
    status: str
    n_held_back: int
    objective: float | None = None
    bound: float | None = None
    gap: float | None = None
    model_version: str | None = None
    new_policy: NewPolicy | None = None
    partners: tuple[PlannedPartner, ...] = ()
    candidates: tuple[PlannedCandidates, ...] = ()
    price_source: str = ""


def live_holders(session: Session, lead_ids: Sequence[str]) -> dict[str, int]:
    """Lead id -> round id of its live assignment, for the leads in ``lead_ids`` that have one."""
    out: dict[str, int] = {}
    ids = list(lead_ids)
    for start in range(0, len(ids), 900):
        query = sa.select(Assignment.lead_id, Assignment.round_id).where(
            Assignment.live, Assignment.lead_id.in_(ids[start : start + 900])
        )
        out.update((lid, rid) for lid, rid in session.execute(query))
    return out


def _assignment_rows(round_id: int, plan: RoundPlan, now: datetime,
                     policy: Policy) -> list[dict[str, Any]]:
    due = accept_deadline(now, policy.sla)
    return [
        {
            "round_id": round_id, "lead_id": a.lead_id, "partner_id": a.partner_id,
            "score": a.score, "rank": a.rank, "reason": a.reason,
            "explanation": a.explanation, "state": "offered", "live": True,
            "created_at": now, "updated_at": now, "state_at": now, "due_at": due,
            "origin": "round", "reroutes": 0, "units": a.units,
        }
        for a in plan.assignments
    ]


def _audit_rows(round_id: int, plan: RoundPlan, actor: str,
                actor_role: str | None, now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "at": now, "actor": actor, "actor_role": actor_role, "action": "assignment.offered",
            "entity_type": "assignment", "entity_id": a.lead_id,
            "round_id": round_id, "lead_id": a.lead_id, "partner_id": a.partner_id,
            "reason": a.reason,
            "detail": {"score": a.score, "rank": a.rank, "named_partners": list(a.named_partners)},
        }
        for a in plan.assignments
    ]


def _round_policy(session: Session, plan: RoundPlan, policy_id: int) -> Policy:
    if plan.new_policy is not None:
        return plan.new_policy.policy
    row = session.get(StoredPolicy, policy_id)
    assert row is not None, f"policy {policy_id} of the round is not stored"
    return load_stored(row)


def _store_lifecycle(session: Session, round_id: int, plan: RoundPlan, now: datetime) -> None:
    """What later routing needs: prices, room and candidates; pool entries the round closes."""
    used: dict[str, float] = {}
    for a in plan.assignments:
        used[a.partner_id] = used.get(a.partner_id, 0.0) + a.units
    if plan.partners:
        session.execute(sa.insert(RoundPartner), [
            {"round_id": round_id, "partner_id": p.partner_id, "price": p.price,
             "capacity_units": p.capacity_units, "used_units": used.get(p.partner_id, 0.0),
             "price_source": plan.price_source[:64], "priced_at": now}
            for p in plan.partners])
    if plan.candidates:
        session.execute(sa.insert(RoundCandidates), [
            {"round_id": round_id, "lead_id": c.lead_id, "partner_ids": list(c.partner_ids),
             "scores": list(c.scores)} for c in plan.candidates])
    offered = [a.lead_id for a in plan.assignments]
    for start in range(0, len(offered), 900):
        session.execute(
            sa.update(PoolEntry)
            .where(PoolEntry.closed_at.is_(None), PoolEntry.lead_id.in_(offered[start:start + 900]))
            .values(closed_at=now, outcome="reoffered"))


def _enqueue_offers(session: Session, round_id: int, plan: RoundPlan, now: datetime,
                    policy: Policy, subs: Sequence[Any]) -> None:
    query = (sa.select(Assignment.id, Assignment.partner_id, Lead)
             .join(Lead, Assignment.lead_id == Lead.lead_id)
             .where(Assignment.round_id == round_id, Assignment.origin == "round"))
    due = accept_deadline(now, policy.sla)
    events = [outbox.PendingEvent("offer_made", pid, outbox.offer_data(aid, lead, pid, due))
              for aid, pid, lead in session.execute(query)]
    outbox.enqueue(session, events, now, subs)


def store_round(session: Session, plan: RoundPlan, actor: str,
                actor_role: str | None = None, *, now: datetime | None = None) -> Round:
    """Store the round, its assignments (all live, ``offered``) and their audit entries.

    With them go the partners' prices and capacity, each lead's eligible partners
    and scores (for re-routing and real-time routing), the closing of pool entries
    of leads the round offers again, and an ``offer_made`` webhook event per offer
    for partners that subscribed.  Commits on success.

    Parameters
    ----------
    now : datetime, optional
        When the offers are made (their accept deadline runs from it); default the
        current time (the service passes its clock's).

    Raises
    ------
    RoundConflictError
        When a planned lead got a live assignment from another round since the
        plan was made; the transaction is rolled back and nothing is stored.
    """
    summary = dict(plan.summary)
    now = now or utcnow()
    try:
        policy_id = plan.policy_id
        if policy_id is None:
            assert plan.new_policy is not None, "a round plan needs a policy"
            new = plan.new_policy
            stored, _ = store_policy(session, new.policy, new.body, new.source_toml, actor,
                                     actor_role)
            policy_id = stored.id
            summary["policy"] = {**summary.get("policy", {}), "id": policy_id}
        row = Round(
            policy_id=policy_id, status=plan.status, model_version=plan.model_version,
            n_leads=len(plan.lead_ids), n_assigned=len(plan.assignments),
            n_held_back=plan.n_held_back, objective=plan.objective, bound=plan.bound,
            gap=plan.gap, summary=summary, created_by=actor, created_at=now,
        )
        session.add(row)
        session.flush()
        policy = _round_policy(session, plan, policy_id)
        rows = _assignment_rows(row.id, plan, now, policy)
        if rows:
            session.execute(sa.insert(Assignment), rows)
        _store_lifecycle(session, row.id, plan, now)
        subs = outbox.active_subscribers(session)
        if outbox.wants(subs, "offer_made"):
            _enqueue_offers(session, row.id, plan, now, policy, subs)
        audit.record_many(session, _audit_rows(row.id, plan, actor, actor_role, now))
        audit.record(
            session, actor=actor, actor_role=actor_role, action="round.completed",
            entity_type="round", entity_id=str(row.id), round_id=row.id,
            reason=f"{len(plan.assignments)} of {len(plan.lead_ids)} leads assigned "
            f"({plan.status})",
            detail={"policy_id": policy_id, "model_version": plan.model_version,
                    "objective": plan.objective, "bound": plan.bound, "gap": plan.gap,
                    "n_held_back": plan.n_held_back},
            at=now,
        )
        session.commit()
    except sa.exc.IntegrityError:
        session.rollback()
        planned = [a.lead_id for a in plan.assignments]
        taken = live_holders(session, planned)
        if not taken:
            raise  # not the live-assignment rule: a real fault, not a race
        raise RoundConflictError(sorted(taken), list(taken.values())) from None
    return row


def get_round(session: Session, round_id: int) -> tuple[Round, StoredPolicy] | None:
    found = session.execute(
        sa.select(Round, StoredPolicy).join(StoredPolicy, Round.policy_id == StoredPolicy.id)
        .where(Round.id == round_id)
    ).first()
    return None if found is None else (found[0], found[1])


def list_rounds(session: Session, offset: int = 0,
                limit: int = 100) -> tuple[int, Sequence[tuple[Round, StoredPolicy]]]:
    total = session.scalar(sa.select(sa.func.count()).select_from(Round))
    rows = session.execute(
        sa.select(Round, StoredPolicy).join(StoredPolicy, Round.policy_id == StoredPolicy.id)
        .order_by(Round.id.desc()).offset(offset).limit(limit)
    ).all()
    return int(total or 0), [(r[0], r[1]) for r in rows]


@dataclass(frozen=True)
class AssignmentRow:
    assignment: Assignment
    lead: Lead
    tier: str | None


def _assignment_query(where: Sequence[Any]) -> Any:
    return (
        sa.select(Assignment, Lead, Partner.tier)
        .join(Lead, Assignment.lead_id == Lead.lead_id)
        .join(Partner, Assignment.partner_id == Partner.partner_id)
        .where(*where)
    )


def list_assignments(
    session: Session,
    *,
    round_id: int | None = None,
    partner_id: str | None = None,
    tier: str | None = None,
    state: str | None = None,
    live: bool | None = None,
    offset: int = 0,
    limit: int = 100,
) -> tuple[int, list[AssignmentRow]]:
    """Assignments matching every given filter, by id, with the total count."""
    where: list[Any] = []
    if round_id is not None:
        where.append(Assignment.round_id == round_id)
    if partner_id is not None:
        where.append(Assignment.partner_id == partner_id)
    if tier is not None:
        where.append(Partner.tier == tier)
    if state is not None:
        where.append(Assignment.state == state)
    if live is not None:
        where.append(Assignment.live == live)
    count = sa.select(sa.func.count()).select_from(
        _assignment_query(where).with_only_columns(Assignment.id).subquery()
    )
    total = session.scalar(count)
    rows = session.execute(
        _assignment_query(where).order_by(Assignment.id).offset(offset).limit(limit)
    ).all()
    return int(total or 0), [AssignmentRow(a, lead, tier) for a, lead, tier in rows]


def get_assignment(session: Session, assignment_id: int) -> AssignmentRow | None:
    found = session.execute(_assignment_query([Assignment.id == assignment_id])).first()
    return None if found is None else AssignmentRow(found[0], found[1], found[2])


#: States in which a partner gave a lead up (or had it taken away): the lead is never
#: offered to that partner again, by a round, a re-route or the pool.
DECLINED_STATES = ("rejected", "expired", "reclaimed")


def rejected_pairs(session: Session) -> list[Mapping[str, str]]:
    """(lead_id, partner_id) of every rejected, expired or reclaimed assignment.

    Not offered to that partner again: a partner that rejected a lead, let the
    offer expire or did not contact it in time does not get it back.
    """
    rows = session.execute(
        sa.select(Assignment.lead_id, Assignment.partner_id)
        .where(Assignment.state.in_(DECLINED_STATES)).distinct()
    ).all()
    return [{"lead_id": lid, "partner_id": pid} for lid, pid in rows]
