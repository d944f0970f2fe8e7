"""The audit log, read-only: admins read all of it, a partner the entries about itself."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from service.api.deps import PARTNER, CallerDep, SessionDep, partner_scope
from service.api.errors import responses
from service.api.fields import Ident, RowId
from service.api.routes._router import protected_router
from service.api.schemas import AuditEntryPublic, Page
from service.api.views import redact_partners
from service.db import audit as repo
from service.db.tables import AuditEntry

router = protected_router("/audit", "audit")


def _public(entry: AuditEntry, viewer_partner: str | None) -> AuditEntryPublic:
    body = AuditEntryPublic.model_validate(entry, from_attributes=True)
    if viewer_partner is not None:
        named = [str(p) for p in (entry.detail or {}).get("named_partners", [])]
        if body.reason:
            body.reason = redact_partners(body.reason, viewer_partner, named)
        body.detail = {k: v for k, v in body.detail.items() if k != "named_partners"}
    return body


@router.get(
    "",
    response_model=Page[AuditEntryPublic],
    summary="Read the audit log (who did what, when and why), oldest first",
    responses=responses(403, 422),
)
def read_audit(
    session: SessionDep,
    caller: CallerDep,
    partner_id: Annotated[Ident | None, Query()] = None,
    lead_id: Annotated[Ident | None, Query()] = None,
    round_id: Annotated[RowId | None, Query()] = None,
    action: Annotated[Ident | None, Query(description="e.g. assignment.offered")] = None,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[AuditEntryPublic]:
    """A partner key sees only entries about its own assignments and its own partner."""
    scope = partner_scope(caller, partner_id)
    total, rows = repo.query(session, partner_id=scope, lead_id=lead_id, round_id=round_id,
                             action=action, offset=offset, limit=limit)
    viewer = caller.partner_id if caller.role == PARTNER else None
    return Page(items=[_public(e, viewer) for e in rows], total=total, offset=offset,
                limit=limit)
