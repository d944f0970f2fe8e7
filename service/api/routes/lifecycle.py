"""The SLA sweep on demand, and a partner's performance (acceptance, speed, SLAs, conversion)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, Request

from service.api.deps import CallerDep, ClockDep, SessionDep, SettingsDep, partner_scope
from service.api.errors import NotFoundError, responses
from service.api.fields import PathIdent, Timestamp
from service.api.lifecycle_schemas import PerformancePublic, SweepOut
from service.api.routes._router import protected_router
from service.db.performance import partner_performance
from service.db.reroute import Actor
from service.db.sweep import sweep
from service.db.tables import Partner

router = protected_router("", "lifecycle")


@router.post("/lifecycle/sweep", response_model=SweepOut,
             summary="Run the SLA job now: expire, reclaim, re-route, pool, warn")
def run_sweep(request: Request, settings: SettingsDep, caller: CallerDep,
              clock: ClockDep) -> SweepOut:
    """What the periodic job does every ``lifecycle_interval_s`` seconds; safe to run while
    it runs (each assignment is handled once).  Real-time routing prices are re-solved when
    due.  Webhooks are delivered by the job (and ``fairlead sweep``)."""
    report = sweep(request.app.state.sessionmaker, clock,
                   warn_within_hours=settings.offer_expiring_warning_hours,
                   actor=Actor(caller.actor, caller.role))
    repriced = request.app.state.routing.reprice_if_due(request.app.state.sessionmaker,
                                                        clock.now())
    return SweepOut(**report.as_dict(), repriced=repriced)


@router.get("/partners/{partner_id}/performance", response_model=PerformancePublic,
            summary="A partner's acceptance rate, time to accept and to first contact, SLA "
            "misses and conversion rate",
            responses=responses(404, 422))
def performance(
    partner_id: Annotated[PathIdent, Path()],
    session: SessionDep,
    caller: CallerDep,
    since: Annotated[Timestamp | None, Query(description="Offers made from (ISO-8601)")] = None,
    until: Annotated[Timestamp | None, Query(description="... until (excluded)")] = None,
) -> PerformancePublic:
    """A partner key reads only its own."""
    partner_scope(caller, partner_id)
    if session.get(Partner, partner_id) is None:
        raise NotFoundError("partner", partner_id)
    return PerformancePublic.model_validate(
        partner_performance(session, partner_id, since=since, until=until))
