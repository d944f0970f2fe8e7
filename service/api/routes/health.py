"""``GET /health`` (no key: is the database reachable, is a model loaded) and ``GET /me``."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from service.api.deps import CallerDep
from service.api.routes._router import protected_router
from service.db import migrate


class DatabaseHealth(BaseModel):
    ok: bool
    backend: str
    revision: str | None = None
    expected_revision: str
    detail: str


class ModelHealth(BaseModel):
    loaded: bool
    version: str | None = None
    detail: str


class HealthOut(BaseModel):
    status: str
    database: DatabaseHealth
    model: ModelHealth


class MeOut(BaseModel):
    key_id: str
    role: str
    partner_id: str | None = None


router = APIRouter(tags=["service"])
me_router = protected_router("", "service")


def _database(request: Request) -> DatabaseHealth:
    engine = request.app.state.engine
    expected = migrate.head_revision()
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
            revision = MigrationContext.configure(conn).get_current_revision()
    except sa.exc.SQLAlchemyError as exc:
        return DatabaseHealth(
            ok=False, backend=engine.dialect.name, expected_revision=expected,
            detail=f"database unreachable: {type(exc).__name__}: {exc}".splitlines()[0],
        )
    if revision != expected:
        return DatabaseHealth(
            ok=False, backend=engine.dialect.name, revision=revision, expected_revision=expected,
            detail=f"schema at revision {revision!r}, expected {expected!r}: run the migrations",
        )
    return DatabaseHealth(
        ok=True, backend=engine.dialect.name, revision=revision, expected_revision=expected,
        detail="reachable, schema up to date",
    )


@router.get(
    "/health",
    response_model=HealthOut,
    summary="Service health: database reachable and migrated, model loaded",
    responses={503: {"model": HealthOut, "description": "The database is not usable."}},
)
def health(request: Request) -> Any:
    db = _database(request)
    state = request.app.state.model
    body = HealthOut(
        status="ok" if db.ok else "unavailable",
        database=db,
        model=ModelHealth(loaded=state.loaded, version=state.version, detail=state.detail),
    )
    if not db.ok:
        return JSONResponse(body.model_dump(), status_code=503)
    return body


@me_router.get("/me", response_model=MeOut, summary="The caller's key id, role and partner")
def me(caller: CallerDep) -> MeOut:
    return MeOut(key_id=caller.key_id, role=caller.role, partner_id=caller.partner_id)
