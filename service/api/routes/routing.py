"""``POST /route``: one lead routed now, between rounds, by the latest round's prices."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from fastapi import Request

from service.api.deps import CallerDep, ClockDep, SessionDep, SettingsDep
from service.api.errors import ConflictError, ConflictOut, NotFoundError, responses
from service.api.lifecycle_schemas import RouteCreate, RouteResult
from service.api.lifecycle_views import actor, conflicts_as_409
from service.api.model_state import current_model
from service.api.routes._router import protected_router
from service.api.storage import commit_or_conflict
from service.db import room
from service.db.records import (
    changed_fields,
    lead_content,
    lead_values,
    stored_lead_content,
    stored_record,
)
from service.db.tables import Lead
from service.routing import NoRoundError, RouteOutcome, plan_route, store_route

router = protected_router("", "routing")


def _new_lead(stored: Lead | None, record: dict[str, Any]
              ) -> tuple[Lead, dict[str, Any] | None]:
    """The lead of the request, and its column values when it is new (idempotent by lead_id).

    Raises
    ------
    ConflictError
        The lead is stored with other content (leads are immutable).
    """
    content = lead_content(record)
    values = lead_values(content)
    if stored is not None:
        if stored.content_hash != values["content_hash"]:
            fields = changed_fields(stored_lead_content(stored), content)
            raise ConflictError(f"Lead {stored.lead_id!r} was already ingested with other "
                                f"content ({', '.join(fields)}); leads are immutable once "
                                "stored.", ids=[stored.lead_id])
        return stored, None
    return Lead(**values), values


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
    record = body.lead.as_record() if body.lead is not None else None
    with conflicts_as_409(session, "lead"):
        try:
            ctx, n_subscriptions, stored = routing.lookup(
                session, model.model, model.version, settings.realtime_expected_arrivals,
                lead_id=str(record["lead_id"]) if record is not None else "")
        except NoRoundError as exc:
            raise ConflictError(str(exc)) from None
        new_values = None
        now = clock.now()
        if record is not None:
            # a new lead (the usual case) is not read again: nobody declined it
            known = session.get(Lead, str(record["lead_id"])) if stored else None
            scored = routing.batcher.score(
                ctx, record, room.declined_by(session, known.lead_id) if known else ())
            lead, new_values = _new_lead(known, scored.record)
        else:
            assert body.lead_id is not None
            found = session.get(Lead, body.lead_id)
            if found is None:
                raise NotFoundError("lead", body.lead_id)
            lead = found
            scored = routing.batcher.score(ctx, stored_record(lead),
                                           room.declined_by(session, lead.lead_id))
        # read and decided before the first write: room is taken by a conditional update
        plan = plan_route(session, ctx, lead, scored=scored, new=new_values is not None,
                          subscribers=() if n_subscriptions == 0 else None)
        # SQLite has one writer: writers of this process queue here instead of sleeping in
        # SQLite's busy handler (PostgreSQL locks rows and needs no queue)
        with request.app.state.write_lock or nullcontext():
            out = store_route(session, ctx, plan, now, actor(caller), new_lead=new_values)
            commit_or_conflict(session, "lead")
    return _result(out)
