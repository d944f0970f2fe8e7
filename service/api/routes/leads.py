"""Leads: idempotent bulk ingest (JSON rows or an uploaded file), list, read."""

from __future__ import annotations

from typing import Annotated, Literal

import pandas as pd
from fastapi import File, Path, Query, UploadFile
from sqlalchemy.orm import Session

from service.api.deps import CallerDep, SessionDep
from service.api.errors import ConflictError, NotFoundError, responses
from service.api.fields import PathIdent
from service.api.ingest import check_upload, frame_from_rows
from service.api.routes._router import protected_router
from service.api.schemas import LeadConflict, LeadPublic, LeadsCreate, LeadsIngested, Page
from service.api.storage import commit_or_conflict
from service.api.views import lead_public
from service.contract import validate_leads
from service.contract.columns import LEADS
from service.contract.tables import check_leads
from service.db import leads as repo
from service.db.keys import Principal
from service.db.tables import Lead

router = protected_router("/leads", "leads")

OnConflict = Annotated[
    Literal["reject", "skip"],
    Query(description="A lead already stored with other content: 'reject' the whole request "
          "(409, nothing stored) or 'skip' it (reported, the others stored)"),
]


def _store(session: Session, frame: pd.DataFrame, caller: Principal,
           on_conflict: str) -> LeadsIngested:
    outcome = repo.ingest_leads(session, frame, caller.actor, caller.role,
                                store_when_conflicting=on_conflict == "skip")
    shown = list(outcome.conflicts.items())[:20]
    listing = "; ".join(f"{lid} ({', '.join(fields)})" for lid, fields in shown)
    more = f" and {len(outcome.conflicts) - 20} more" if len(outcome.conflicts) > 20 else ""
    if outcome.conflicts and on_conflict == "reject":
        session.rollback()
        raise ConflictError(
            f"{len(outcome.conflicts)} lead(s) were already ingested with other content: "
            f"{listing}{more}. Leads are immutable once stored; nothing was stored. "
            "Send them under new lead_ids, or use on_conflict=skip to store the others.",
            ids=list(outcome.conflicts),
        )
    commit_or_conflict(session, "leads")
    message = (
        f"{len(outcome.created)} created, {len(outcome.unchanged)} unchanged (already "
        f"stored with the same content), {len(outcome.conflicts)} conflicting"
    )
    if outcome.conflicts:
        message += f" and not stored: {listing}{more}"
    return LeadsIngested(
        created=len(outcome.created),
        unchanged=len(outcome.unchanged),
        conflicting=len(outcome.conflicts),
        conflicts=[LeadConflict(lead_id=k, fields=v) for k, v in outcome.conflicts.items()],
        message=message,
    )


@router.post(
    "",
    response_model=LeadsIngested,
    summary="Ingest leads (JSON rows); idempotent by lead_id",
    responses=responses(400, 409, 422),
)
def ingest_leads(
    body: LeadsCreate, session: SessionDep, caller: CallerDep, on_conflict: OnConflict = "reject"
) -> LeadsIngested:
    """Re-sending a lead with the same content changes nothing and is counted ``unchanged``."""
    frame = validate_leads(frame_from_rows([r.as_record() for r in body.leads]), file="leads")
    return _store(session, frame, caller, on_conflict)


@router.post(
    "/upload",
    response_model=LeadsIngested,
    summary="Ingest leads from a leads.csv / .parquet file; idempotent by lead_id",
    responses=responses(400, 409, 413, 422),
)
def upload_leads(
    file: Annotated[UploadFile, File(description="leads.csv or .parquet")],
    session: SessionDep,
    caller: CallerDep,
    on_conflict: OnConflict = "reject",
) -> LeadsIngested:
    frame = check_upload(file, "leads.csv", LEADS.names(),
                         lambda df, name, rows: check_leads(df, name, rows))
    return _store(session, frame, caller, on_conflict)


@router.get("", response_model=Page[LeadPublic], summary="List leads",
            responses=responses(422))
def list_leads(
    session: SessionDep,
    caller: CallerDep,
    pending: Annotated[
        bool | None, Query(description="true: only leads without a live assignment")
    ] = None,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[LeadPublic]:
    total, rows = repo.list_leads(session, offset, limit, pending=pending)
    return Page(items=[lead_public(r, caller) for r in rows], total=total, offset=offset,
                limit=limit)


@router.get("/{lead_id}", response_model=LeadPublic, summary="Read one lead",
            responses=responses(404, 422))
def read_lead(
    lead_id: Annotated[PathIdent, Path()], session: SessionDep, caller: CallerDep
) -> LeadPublic:
    lead = session.get(Lead, lead_id)
    if lead is None:
        raise NotFoundError("lead", lead_id)
    return lead_public(lead, caller)
