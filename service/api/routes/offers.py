"""Offers: a partner's view of the leads routed to it; accept, reject, report dispositions.

An offer is blind (region, vertical, product, size, intent) until accepted;
accepting reveals the contact details and starts the contact SLA.  A move the
lead's state does not allow is a 409 naming the moves that are allowed.
"""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Path, Query

from service.api.deps import PARTNER, CallerDep, ClockDep, SessionDep, partner_scope
from service.api.errors import ConflictOut, NotFoundError, TransitionOut, responses
from service.api.fields import Ident, RowId
from service.api.lifecycle_schemas import DispositionCreate, OfferMoved, OfferPublic, RejectCreate
from service.api.lifecycle_views import actor, conflicts_as_409, next_step, offer_public
from service.api.routes._router import protected_router
from service.api.schemas import Page
from service.api.storage import commit_or_conflict
from service.db import offers as repo
from service.db.keys import Principal
from service.db.tables import Assignment, Lead
from service.lifecycle.states import lost_reason, reject_reason

router = protected_router("/offers", "offers")

_409: dict[int | str, Any] = {409: {"model": TransitionOut | ConflictOut,
              "description": "The move is not allowed from the offer's state (the allowed "
                             "ones are named), its deadline passed, or another request moved "
                             "it first."}}
_LIVE_STATES = ("offered", "accepted", "claimed", "contacted", "qualified", "opportunity")


def _get(session: SessionDep, caller: Principal, assignment_id: int) -> tuple[Assignment, Lead]:
    query = (sa.select(Assignment, Lead).join(Lead, Assignment.lead_id == Lead.lead_id)
             .where(Assignment.id == assignment_id))
    found = session.execute(query).first()
    # Another partner's offer is "not found" for a partner key: its id tells nothing.
    if found is None or (caller.role == PARTNER and found[0].partner_id != caller.partner_id):
        raise NotFoundError("offer", assignment_id)
    return found[0], found[1]


@router.get("", response_model=Page[OfferPublic],
            summary="Offers and leads being worked (a partner key: its own)",
            responses=responses(403, 422))
def list_offers(
    session: SessionDep,
    caller: CallerDep,
    partner_id: Annotated[Ident | None, Query(description="Admin: one partner's")] = None,
    state: Annotated[Ident | None, Query(description="offered, accepted, ... (default: every "
                                         "live state)")] = None,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[OfferPublic]:
    scope = partner_scope(caller, partner_id)
    where = [Assignment.state == state] if state else [Assignment.state.in_(_LIVE_STATES),
                                                        Assignment.live]
    if scope is not None:
        where.append(Assignment.partner_id == scope)
    base = sa.select(Assignment, Lead).join(Lead, Assignment.lead_id == Lead.lead_id).where(
        *where)
    total = session.scalar(sa.select(sa.func.count()).select_from(
        base.with_only_columns(Assignment.id).subquery()))
    rows = session.execute(base.order_by(Assignment.id).offset(offset).limit(limit)).all()
    return Page(items=[offer_public(a, lead, caller) for a, lead in rows],
                total=int(total or 0), offset=offset, limit=limit)


@router.get("/{assignment_id}", response_model=OfferPublic, summary="One offer",
            responses=responses(404, 422))
def read_offer(assignment_id: Annotated[RowId, Path()], session: SessionDep,
               caller: CallerDep) -> OfferPublic:
    return offer_public(*_get(session, caller, assignment_id), caller)


@router.post("/{assignment_id}/accept", response_model=OfferMoved,
             summary="Accept an offer: the contact details open and the contact SLA starts",
             responses={**responses(404, 422), **_409})
def accept(assignment_id: Annotated[RowId, Path()], session: SessionDep, caller: CallerDep,
           clock: ClockDep) -> OfferMoved:
    a, lead = _get(session, caller, assignment_id)
    with conflicts_as_409(session, "offer"):
        repo.accept(session, a, clock.now(), actor(caller))
        commit_or_conflict(session, "offer")
    return OfferMoved(offer=offer_public(a, lead, caller))


@router.post("/{assignment_id}/reject", response_model=OfferMoved,
             summary="Reject an offer with a reason; the lead goes to the next partner or the "
             "pool at once",
             responses={**responses(400, 404, 422), **_409})
def reject(assignment_id: Annotated[RowId, Path()], body: RejectCreate, session: SessionDep,
           caller: CallerDep, clock: ClockDep) -> OfferMoved:
    """The reason is one of the fixed list (``other`` needs a text)."""
    reason = reject_reason(body.reason, body.text)
    a, lead = _get(session, caller, assignment_id)
    with conflicts_as_409(session, "offer"):
        moved = repo.reject(session, a, reason, clock.now(), actor(caller))
        commit_or_conflict(session, "offer")
    return OfferMoved(offer=offer_public(a, lead, caller),
                      next=next_step(moved.rerouted, caller))


@router.post("/{assignment_id}/disposition", response_model=OfferMoved,
             summary="Report how an accepted lead is going: contacted, qualified, opportunity, "
             "won, lost (with a reason)",
             responses={**responses(400, 404, 422), **_409})
def disposition(assignment_id: Annotated[RowId, Path()], body: DispositionCreate,
                session: SessionDep, caller: CallerDep, clock: ClockDep) -> OfferMoved:
    """Steps may be skipped (accepted → won) but never undone; won and lost are final and
    become training history."""
    reason = lost_reason(body.reason or "", body.text) if body.disposition == "lost" else None
    a, lead = _get(session, caller, assignment_id)
    with conflicts_as_409(session, "offer"):
        repo.dispose(session, a, body.disposition, clock.now(), actor(caller), reason=reason,
                     note=body.note)
        commit_or_conflict(session, "offer")
    return OfferMoved(offer=offer_public(a, lead, caller))
