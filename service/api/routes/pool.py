"""The claim pool: leads no partner took, shown tier by tier; the first eligible claim wins."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from service.api.deps import PARTNER, CallerDep, ClockDep, SessionDep
from service.api.errors import ConflictOut, NotFoundError, responses
from service.api.fields import PathIdent
from service.api.lifecycle_schemas import OfferPublic, PooledPublic
from service.api.lifecycle_views import actor, conflicts_as_409, offer_public, pooled_public
from service.api.routes._router import protected_router
from service.api.schemas import Page
from service.api.storage import commit_or_conflict
from service.db import pool as repo
from service.db.keys import Principal
from service.db.tables import Lead, Partner

router = protected_router("/pool", "pool")


def _partner(session: SessionDep, caller: Principal) -> Partner:
    partner = session.get(Partner, caller.partner_id)
    assert partner is not None, "a partner key is bound to a stored partner"
    return partner


@router.get("", response_model=Page[PooledPublic],
            summary="Pooled leads (a partner key: those its tier sees now and it may claim)",
            responses=responses(422))
def list_pool(
    session: SessionDep,
    caller: CallerDep,
    clock: ClockDep,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[PooledPublic]:
    """Blind: no contact details until claimed.  Admins see every open entry with the tiers
    that see it now and when the next tier will."""
    now = clock.now()
    if caller.role == PARTNER:
        items = repo.visible_to(session, _partner(session, caller), now)
    else:
        items = repo.open_pool(session, now)
    shown = items[offset:offset + limit]
    return Page(items=[pooled_public(p, caller) for p in shown], total=len(items),
                offset=offset, limit=limit)


@router.post(
    "/{lead_id}/claim",
    response_model=OfferPublic,
    summary="Claim a pooled lead: it is yours, contact details included, contact SLA running",
    responses={**responses(404, 422),
               409: {"model": ConflictOut,
                     "description": "Another partner claimed it first, or your tier does not "
                                    "see it yet, or you are not eligible for it."}},
)
def claim(lead_id: Annotated[PathIdent, Path()], session: SessionDep, caller: CallerDep,
          clock: ClockDep) -> OfferPublic:
    partner = _partner(session, caller)
    with conflicts_as_409(session, "pooled lead"):
        try:
            a = repo.claim(session, lead_id, partner, clock.now(), actor(caller))
        except LookupError:
            raise NotFoundError("pooled lead", lead_id) from None
        commit_or_conflict(session, "pooled lead")
    lead = session.get(Lead, lead_id)
    assert lead is not None
    return offer_public(a, lead, caller)
