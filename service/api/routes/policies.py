"""Policies: store (versioned by content hash), list, read."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, Response, status

from service.api.deps import CallerDep, SessionDep
from service.api.errors import NotFoundError, responses
from service.api.fields import RowId
from service.api.routes._router import protected_router
from service.api.schemas import Page, PolicyCreate, PolicyPublic, PolicyStored
from service.api.storage import commit_or_conflict
from service.db import policies as repo
from service.db.tables import StoredPolicy

router = protected_router("/policies", "policies")


@router.post(
    "",
    response_model=PolicyStored,
    status_code=status.HTTP_201_CREATED,
    summary="Store a policy (TOML text or JSON); the same policy is stored once",
    responses={200: {"model": PolicyStored, "description": "The policy was already stored"},
               **responses(400, 409, 422)},
)
def store_policy(
    body: PolicyCreate, session: SessionDep, caller: CallerDep, response: Response
) -> PolicyStored:
    policy, data = repo.parse_policy(body.body, body.toml)
    row, created = repo.store_policy(session, policy, data, body.toml, caller.actor, caller.role)
    commit_or_conflict(session, "policies")
    if not created:
        response.status_code = status.HTTP_200_OK
    return PolicyStored(**PolicyPublic.model_validate(row, from_attributes=True).model_dump(),
                        created=created)


@router.get("", response_model=Page[PolicyPublic], summary="List stored policies",
            responses=responses(422))
def list_policies(
    session: SessionDep,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[PolicyPublic]:
    total, rows = repo.list_policies(session, offset, limit)
    return Page(items=[PolicyPublic.model_validate(r, from_attributes=True) for r in rows],
                total=total, offset=offset, limit=limit)


@router.get("/{policy_id}", response_model=PolicyPublic, summary="Read one stored policy",
            responses=responses(404, 422))
def read_policy(policy_id: Annotated[RowId, Path()], session: SessionDep) -> PolicyPublic:
    row = session.get(StoredPolicy, policy_id)
    if row is None:
        raise NotFoundError("policy", policy_id)
    return PolicyPublic.model_validate(row, from_attributes=True)
