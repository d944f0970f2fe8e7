"""Partners: bulk upsert (JSON rows or an uploaded file), list, read."""

from __future__ import annotations

from typing import Annotated

import pandas as pd
from fastapi import File, Path, Query, UploadFile
from sqlalchemy.orm import Session

from service.api.deps import CallerDep, SessionDep, partner_scope
from service.api.errors import NotFoundError, responses
from service.api.fields import Ident, PathIdent
from service.api.ingest import check_upload, frame_from_rows
from service.api.routes._router import protected_router
from service.api.schemas import Page, PartnerPublic, PartnersCreate, PartnersUpserted
from service.api.storage import commit_or_conflict
from service.contract import validate_partners
from service.contract.columns import PARTNERS
from service.contract.tables import check_partners
from service.db import partners as repo
from service.db.keys import Principal
from service.db.tables import Partner

router = protected_router("/partners", "partners")


def _public(p: Partner) -> PartnerPublic:
    return PartnerPublic.model_validate(p, from_attributes=True)


def _store(session: Session, frame: pd.DataFrame, caller: Principal) -> PartnersUpserted:
    outcome = repo.upsert_partners(session, frame, caller.actor, caller.role)
    commit_or_conflict(session, "partners")
    return PartnersUpserted(
        created=len(outcome.created),
        updated=len(outcome.updated),
        unchanged=len(outcome.unchanged),
        created_ids=outcome.created,
        updated_ids=outcome.updated,
        message=f"{len(outcome.created)} created, {len(outcome.updated)} updated, "
        f"{len(outcome.unchanged)} unchanged",
    )


@router.post(
    "",
    response_model=PartnersUpserted,
    summary="Create or update partners (JSON rows)",
    responses=responses(400, 409, 422),
)
def upsert_partners(
    body: PartnersCreate, session: SessionDep, caller: CallerDep
) -> PartnersUpserted:
    """Rows follow ``partners.csv``; every contract problem is reported at once (422)."""
    frame = validate_partners(frame_from_rows([p.as_record() for p in body.partners]),
                              file="partners")
    return _store(session, frame, caller)


@router.post(
    "/upload",
    response_model=PartnersUpserted,
    summary="Create or update partners from a partners.csv / .parquet file",
    responses=responses(400, 409, 413, 422),
)
def upload_partners(
    file: Annotated[UploadFile, File(description="partners.csv or .parquet")],
    session: SessionDep,
    caller: CallerDep,
) -> PartnersUpserted:
    frame = check_upload(
        file, "partners.csv", PARTNERS.names(),
        lambda df, name, rows: check_partners(df, name, None, rows),
    )
    return _store(session, frame, caller)


@router.get("", response_model=Page[PartnerPublic], summary="List partners",
            responses=responses(422))
def list_partners(
    session: SessionDep,
    tier: Annotated[Ident | None, Query()] = None,
    active: bool | None = None,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[PartnerPublic]:
    total, rows = repo.list_partners(session, offset, limit, tier=tier, active=active)
    return Page(items=[_public(p) for p in rows], total=total, offset=offset, limit=limit)


@router.get("/{partner_id}", response_model=PartnerPublic, summary="Read one partner",
            responses=responses(404, 422))
def read_partner(
    partner_id: Annotated[PathIdent, Path()], session: SessionDep, caller: CallerDep
) -> PartnerPublic:
    """A partner key reads only its own partner."""
    partner_scope(caller, partner_id)
    partner = session.get(Partner, partner_id)
    if partner is None:
        raise NotFoundError("partner", partner_id)
    return _public(partner)
