"""``POST /route``: one lead routed now, between rounds, by the latest round's prices."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from fastapi import Request
from sqlalchemy.orm import Session

from service.api.deps import CallerDep, ClockDep, SessionDep, SettingsDep
from service.api.errors import ConflictError, ConflictOut, NotFoundError, responses
from service.api.lifecycle_schemas import RouteCreate, RouteResult
from service.api.lifecycle_views import actor, conflicts_as_409
from service.api.model_state import current_model
from service.api.routes._router import protected_router
from service.api.storage import commit_or_conflict
from service.db import audit, room
from service.db.keys import Principal
from service.db.records import (
    changed_fields,
    lead_content,
    lead_values,
    stored_lead_content,
    stored_record,
)
from service.db.tables import Lead
from service.routing import NoRoundError, RouteOutcome, route_lead

router = protected_router("", "routing")


def _new_lead(session: Session, record: dict[str, Any], caller: Principal,
              now: datetime) -> tuple[Lead, Callable[[], None] | None]:
    """The lead of the request, and how to store it when it is new (idempotent by lead_id).

    Read now; stored (the first write) only once the routing decision is made.
    """
    content = lead_content(record)
    values = lead_values(content)
    stored = session.get(Lead, values["lead_id"])
    if stored is not None:
        if stored.content_hash != values["content_hash"]:
            fields = changed_fields(stored_lead_content(stored), content)
            raise ConflictError(f"Lead {stored.lead_id!r} was already ingested with other "
                                f"content ({', '.join(fields)}); leads are immutable once "
                                "stored.", ids=[stored.lead_id])
        return stored, None

    def store() -> None:
        session.execute(sa.insert(Lead), [{**values, "ingested_at": now}])
        audit.record(session, actor=caller.actor, actor_role=caller.role,
                     action="lead.created", entity_type="lead", entity_id=values["lead_id"],
                     lead_id=values["lead_id"], at=now)

    return Lead(**values), store


def _result(out: RouteOutcome) -> RouteResult:
    d, a = out.decision, out.assignment
    return RouteResult(
        lead_id=out.lead_id, routed=out.routed, reason=out.reason, round_id=out.round_id,
        assignment_id=a.id if a is not None else None,
        partner_id=a.partner_id if a is not None else None,
        score=d.score if d is not None else None, price=d.price if d is not None else None,
        adjusted_value=d.adjusted_value if d is not None else None,
        runner_up_id=d.runner_up_id if d is not None else None,
        runner_up_adjusted_value=d.runner_up_adjusted_value if d is not None else None,
        n_eligible=d.n_eligible if d is not None else 0,
        n_with_room=d.n_with_room if d is not None else 0,
        price_source=out.price_source, decision_ms=round(out.decision_ms, 3),
    )


@router.post(
    "/route",
    response_model=RouteResult,
    summary="Route one lead now: the eligible partner with room and the best score − price",
    responses={**responses(400, 404, 422),
               409: {"model": ConflictOut,
                     "description": "No round has been run yet, the lead already has a live "
                                    "assignment, or it was ingested with other content."}},
)
def route(body: RouteCreate, request: Request, session: SessionDep, settings: SettingsDep,
          caller: CallerDep, clock: ClockDep) -> RouteResult:
    """A new lead is stored first (idempotent by ``lead_id``); a lead whose best
    ``score − price`` is not positive is held for the next round (``routed`` false, the
    reason says why).  The reason of a routed lead names the price that decided it."""
    model = current_model(request.app.state, settings.model_dir)
    routing = request.app.state.routing
    with conflicts_as_409(session, "lead"):
        try:
            ctx = routing.get(session, model.model, model.version,
                              settings.realtime_expected_arrivals)
        except NoRoundError as exc:
            raise ConflictError(str(exc)) from None
        store = None
        now = clock.now()
        if body.lead is not None:
            record = body.lead.as_record()
            known = session.get(Lead, str(record["lead_id"]))  # a new lead: nobody declined it
            scored = routing.batcher.score(
                ctx, record, room.declined_by(session, known.lead_id) if known else ())
            lead, store = _new_lead(session, scored.record, caller, now)
        else:
            assert body.lead_id is not None
            found = session.get(Lead, body.lead_id)
            if found is None:
                raise NotFoundError("lead", body.lead_id)
            lead = found
            scored = routing.batcher.score(ctx, stored_record(lead),
                                           room.declined_by(session, lead.lead_id))
        # SQLite has one writer: writers of this process queue here instead of sleeping in
        # SQLite's busy handler (PostgreSQL locks rows and needs no queue)
        with request.app.state.write_lock or nullcontext():
            out = route_lead(session, ctx, lead, now, actor(caller), scored=scored,
                             store_lead=store)
            commit_or_conflict(session, "lead")
    return _result(out)
