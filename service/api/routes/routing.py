"""``POST /route``: one lead routed now, between rounds, by the latest round's prices."""

from __future__ import annotations

from fastapi import Request

from service.api.deps import CallerDep, ClockDep, SessionDep, SettingsDep
from service.api.errors import ConflictError, ConflictOut, NotFoundError, responses
from service.api.ingest import frame_from_rows
from service.api.lifecycle_schemas import RouteCreate, RouteResult
from service.api.lifecycle_views import actor, conflicts_as_409
from service.api.model_state import current_model
from service.api.routes._router import protected_router
from service.api.storage import commit_or_conflict
from service.contract import validate_leads
from service.db import leads as leads_repo
from service.db.tables import Lead
from service.routing import NoRoundError, RouteOutcome, route_lead

router = protected_router("", "routing")


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
    with conflicts_as_409(session, "lead"):
        if body.lead is not None:
            frame = validate_leads(frame_from_rows([body.lead.as_record()]), file="lead")
            outcome = leads_repo.ingest_leads(session, frame, caller.actor, caller.role)
            if outcome.conflicts:
                session.rollback()
                (lid, fields), = outcome.conflicts.items()
                raise ConflictError(f"Lead {lid!r} was already ingested with other content "
                                    f"({', '.join(fields)}); leads are immutable once stored.",
                                    ids=[lid])
            session.flush()
            lead_id = str(frame["lead_id"].iloc[0])
        else:
            assert body.lead_id is not None
            lead_id = body.lead_id
        lead = session.get(Lead, lead_id)
        if lead is None:
            raise NotFoundError("lead", lead_id)
        try:
            ctx = request.app.state.routing.get(session, model.model, model.version,
                                                settings.realtime_expected_arrivals)
        except NoRoundError as exc:
            raise ConflictError(str(exc)) from None
        out = route_lead(session, ctx, lead, clock.now(), actor(caller))
        commit_or_conflict(session, "lead")
    return _result(out)
