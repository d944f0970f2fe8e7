"""Outcome history, the training data of the conversion model: ingest (idempotent), list."""

from __future__ import annotations

from typing import Annotated

import pandas as pd
from fastapi import File, Query, Response, UploadFile
from sqlalchemy.orm import Session

from service.api.deps import CallerDep, SessionDep
from service.api.errors import responses
from service.api.fields import Ident
from service.api.ingest import check_upload, frame_from_rows
from service.api.routes._router import protected_router
from service.api.schemas import HistoryCreateBatch, HistoryIngested, HistoryPublic, Page
from service.api.storage import commit_or_conflict
from service.contract import validate_history
from service.contract.columns import DEFAULT_TARGET, history_spec
from service.contract.tables import check_history
from service.db import history as repo
from service.db import outcomes
from service.db.keys import Principal
from service.db.outcomes import history_export

router = protected_router("/history", "history")


def _store(session: Session, frame: pd.DataFrame, target: str,
           caller: Principal) -> HistoryIngested:
    created, unchanged = repo.ingest_history(session, frame, target, caller.actor, caller.role)
    commit_or_conflict(session, "history rows")
    return HistoryIngested(
        created=created, unchanged=unchanged,
        message=f"{created} created, {unchanged} unchanged (already stored)",
    )


@router.post("", response_model=HistoryIngested, summary="Add past assignments with outcomes",
             responses=responses(400, 409, 422))
def ingest_history(
    body: HistoryCreateBatch, session: SessionDep, caller: CallerDep
) -> HistoryIngested:
    """Rows follow ``history.csv`` with the outcome in ``converted``."""
    frame = validate_history(frame_from_rows([r.as_record() for r in body.history]),
                             file="history")
    return _store(session, frame, DEFAULT_TARGET, caller)


@router.post("/upload", response_model=HistoryIngested,
             summary="Add past assignments from a history.csv / .parquet file",
             responses=responses(400, 409, 413, 422))
def upload_history(
    file: Annotated[UploadFile, File(description="history.csv or .parquet")],
    session: SessionDep,
    caller: CallerDep,
    target: Annotated[Ident, Query(min_length=1, description="The outcome column")] = (
        DEFAULT_TARGET
    ),
) -> HistoryIngested:
    frame = check_upload(file, "history.csv", history_spec(target).names(),
                         lambda df, name, rows: check_history(df, name, target, rows))
    return _store(session, frame, target, caller)


@router.get("", response_model=Page[HistoryPublic], summary="List stored outcome history",
            responses=responses(422))
def list_history(
    session: SessionDep,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[HistoryPublic]:
    total, rows = repo.list_history(session, offset, limit)
    return Page(items=[HistoryPublic.model_validate(r, from_attributes=True) for r in rows],
                total=total, offset=offset, limit=limit)


class CSVResponse(Response):
    media_type = "text/csv"


@router.get(
    "/export",
    response_class=Response,
    summary="The stored history (ingested and lifecycle outcomes) as a history.csv for "
    "`fairlead train`",
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                     "description": "history.csv: lead columns, partner_id, assigned_at, "
                     "converted, stage (blank when not known), extras"}},
)
def export_history(session: SessionDep) -> CSVResponse:
    """Won leads are ``converted = 1``, lost ones ``0``; contact details are never exported.

    ``stage`` is the furthest funnel stage a lifecycle outcome reached (``won``
    when converted); an ingested row without one exports a blank stage.
    """
    frame = history_export(outcomes.all_history(session))
    return CSVResponse(frame.to_csv(index=False),
                       headers={"Content-Disposition": 'attachment; filename="history.csv"'})
