"""Rounds: run one under a policy (one transaction), list, read the summary and fairness."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, Request, status

from service.api.deps import CallerDep, ClockDep, SessionDep, SettingsDep
from service.api.errors import ConflictError, ConflictOut, InfeasibleOut, NotFoundError, responses
from service.api.fields import RowId
from service.api.model_state import current_model
from service.api.round_runner import plan_round
from service.api.routes._router import protected_router
from service.api.schemas import FairnessPublic, Page, RoundCreate, RoundDetail, RoundPublic
from service.db import rounds as repo
from service.db.tables import Round, StoredPolicy

router = protected_router("/rounds", "rounds")


def _public(row: Round, policy: StoredPolicy) -> RoundPublic:
    return RoundPublic(
        id=row.id, policy_id=row.policy_id, policy_hash=policy.content_hash, status=row.status,
        model_version=row.model_version, n_leads=row.n_leads, n_assigned=row.n_assigned,
        n_held_back=row.n_held_back, objective=row.objective, bound=row.bound, gap=row.gap,
        created_at=row.created_at, created_by=row.created_by,
    )


def _detail(row: Round, policy: StoredPolicy) -> RoundDetail:
    return RoundDetail(**_public(row, policy).model_dump(), summary=row.summary)


def _get(session: SessionDep, round_id: int) -> tuple[Round, StoredPolicy]:
    found = repo.get_round(session, round_id)
    if found is None:
        raise NotFoundError("round", round_id)
    return found


_ROUND_409 = {
    "model": InfeasibleOut | ConflictOut,
    "description": "The policy is infeasible (the rules in conflict are named), or the round "
    "conflicts with stored state: no lead waiting, no partner, or leads taken by a round "
    "committed meanwhile (nothing stored: run it again).",
}


@router.post(
    "",
    response_model=RoundDetail,
    status_code=status.HTTP_201_CREATED,
    summary="Run a round over the leads without a live assignment",
    responses={**responses(400, 404, 422), 409: _ROUND_409},
)
def run(
    body: RoundCreate, request: Request, session: SessionDep, settings: SettingsDep,
    caller: CallerDep, clock: ClockDep,
) -> RoundDetail:
    """The round, its assignments and their audit entries are stored in one transaction:
    all of them or none.  Each lead gets at most one live assignment, enforced by the
    database: when a concurrent round took some of this round's leads first, this one
    fails with 409 naming them and stores nothing."""
    model = current_model(request.app.state, settings.model_dir)
    plan = plan_round(session, body, model, settings.round_time_limit_s)
    try:
        row = repo.store_round(session, plan, caller.actor, caller.role, now=clock.now())
    except repo.RoundConflictError as exc:
        raise ConflictError(str(exc), ids=exc.lead_ids) from None
    return _detail(*_get(session, row.id))


@router.get("", response_model=Page[RoundPublic], summary="List rounds, newest first",
            responses=responses(422))
def list_rounds(
    session: SessionDep,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[RoundPublic]:
    total, rows = repo.list_rounds(session, offset, limit)
    return Page(items=[_public(r, p) for r, p in rows], total=total, offset=offset, limit=limit)


@router.get("/{round_id}", response_model=RoundDetail,
            summary="A round's summary: objective, bound, gap, partners, rules, held-back leads",
            responses=responses(404, 422))
def read_round(round_id: Annotated[RowId, Path()], session: SessionDep) -> RoundDetail:
    return _detail(*_get(session, round_id))


@router.get("/{round_id}/fairness", response_model=FairnessPublic,
            summary="A round's fairness figures: Gini, Jain, tier shares, per-partner, rule prices",
            responses=responses(404, 422))
def read_fairness(round_id: Annotated[RowId, Path()], session: SessionDep) -> FairnessPublic:
    row, _ = _get(session, round_id)
    summary = row.summary or {}
    return FairnessPublic(
        round_id=row.id, fairness=summary.get("fairness", {}),
        partners=summary.get("partners", []), rules=summary.get("rules", []),
    )
