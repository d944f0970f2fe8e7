"""Assignments with their reasons: per round or across rounds, one, and its explanation."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query

from service.api.deps import PARTNER, CallerDep, SessionDep, partner_scope
from service.api.errors import NotFoundError, responses
from service.api.fields import Ident, RowId
from service.api.routes._router import protected_router
from service.api.schemas import AssignmentPublic, ExplanationPublic, Page
from service.api.views import lead_public, redact_partners
from service.db import rounds as repo
from service.db.keys import Principal
from service.db.tables import Round

router = protected_router("", "assignments")
_PARTNER_FIELDS = ("best_partner_id", "stopped_by_partner")


def _named(row: repo.AssignmentRow) -> list[str]:
    expl = row.assignment.explanation or {}
    # re-routes and real-time routes list every partner their reason may name
    return ([str(expl[k]) for k in _PARTNER_FIELDS if expl.get(k)]
            + [str(p) for p in expl.get("named_partners", []) or []])


def _reason(row: repo.AssignmentRow, caller: Principal) -> str:
    if caller.role != PARTNER:
        return row.assignment.reason
    return redact_partners(row.assignment.reason, row.assignment.partner_id, _named(row))


def _public(row: repo.AssignmentRow, caller: Principal) -> AssignmentPublic:
    a = row.assignment
    return AssignmentPublic(
        id=a.id, round_id=a.round_id, lead_id=a.lead_id, partner_id=a.partner_id,
        tier=row.tier, score=a.score, rank=a.rank, reason=_reason(row, caller),
        state=a.state, live=a.live, created_at=a.created_at,
        lead=lead_public(row.lead, caller, a.state),
    )


def _page(caller: Principal, session: Any, round_id: int | None, partner_id: str | None,
          tier: str | None, state: str | None, live: bool | None, offset: int,
          limit: int) -> Page[AssignmentPublic]:
    scope = partner_scope(caller, partner_id)
    total, rows = repo.list_assignments(session, round_id=round_id, partner_id=scope, tier=tier,
                                        state=state, live=live, offset=offset, limit=limit)
    return Page(items=[_public(r, caller) for r in rows], total=total, offset=offset,
                limit=limit)


PartnerFilter = Annotated[Ident | None, Query(description="Only this partner's assignments")]
TierFilter = Annotated[Ident | None, Query(description="Only partners of this tier")]
StateFilter = Annotated[Ident | None, Query(description="offered, accepted, ...")]
LiveFilter = Annotated[bool | None, Query(description="true: only assignments holding a lead")]
Offset = Annotated[int, Query(ge=0, le=10**9)]
Limit = Annotated[int, Query(ge=1, le=1000)]


@router.get(
    "/rounds/{round_id}/assignments",
    response_model=Page[AssignmentPublic],
    summary="Assignments of a round with their reasons",
    responses=responses(404, 422),
)
def round_assignments(
    round_id: Annotated[RowId, Path()],
    session: SessionDep,
    caller: CallerDep,
    partner_id: PartnerFilter = None,
    tier: TierFilter = None,
    state: StateFilter = None,
    live: LiveFilter = None,
    offset: Offset = 0,
    limit: Limit = 100,
) -> Page[AssignmentPublic]:
    """A partner key sees only its own; contact details only for leads it has accepted."""
    if session.get(Round, round_id) is None:
        raise NotFoundError("round", round_id)
    return _page(caller, session, round_id, partner_id, tier, state, live, offset, limit)


@router.get(
    "/assignments",
    response_model=Page[AssignmentPublic],
    summary="Assignments across rounds (a partner key: its own offers)",
    responses=responses(422),
)
def list_assignments(
    session: SessionDep,
    caller: CallerDep,
    round_id: Annotated[RowId | None, Query()] = None,
    partner_id: PartnerFilter = None,
    tier: TierFilter = None,
    state: StateFilter = None,
    live: LiveFilter = None,
    offset: Offset = 0,
    limit: Limit = 100,
) -> Page[AssignmentPublic]:
    return _page(caller, session, round_id, partner_id, tier, state, live, offset, limit)


def _get(session: Any, caller: Principal, assignment_id: int) -> repo.AssignmentRow:
    row = repo.get_assignment(session, assignment_id)
    # Another partner's assignment is "not found" for a partner key: its id tells nothing.
    if row is None or (caller.role == PARTNER and row.assignment.partner_id != caller.partner_id):
        raise NotFoundError("assignment", assignment_id)
    return row


@router.get(
    "/assignments/{assignment_id}",
    response_model=AssignmentPublic,
    summary="One assignment with its reason",
    responses=responses(404, 422),
)
def read_assignment(
    assignment_id: Annotated[RowId, Path()], session: SessionDep, caller: CallerDep
) -> AssignmentPublic:
    return _public(_get(session, caller, assignment_id), caller)


@router.get(
    "/assignments/{assignment_id}/explanation",
    response_model=ExplanationPublic,
    summary="Why this lead went to this partner: rank, eligible partners, the rule that "
    "stopped a better-scoring partner and its price",
    responses=responses(404, 422),
)
def explain_assignment(
    assignment_id: Annotated[RowId, Path()], session: SessionDep, caller: CallerDep
) -> ExplanationPublic:
    row = _get(session, caller, assignment_id)
    a = row.assignment
    explanation = dict(a.explanation or {})
    if caller.role == PARTNER:
        for key in _PARTNER_FIELDS:
            if explanation.get(key) and explanation[key] != a.partner_id:
                explanation[key] = "another partner"
        explanation = {k: (redact_partners(v, a.partner_id, _named(row))
                           if isinstance(v, str) else v) for k, v in explanation.items()
                       if k != "named_partners"}
    return ExplanationPublic(
        assignment_id=a.id, lead_id=a.lead_id, partner_id=a.partner_id, score=a.score,
        rank=a.rank, reason=_reason(row, caller), explanation=explanation,
    )

