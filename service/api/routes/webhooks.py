"""Webhook subscriptions: a partner's (events about its leads) or ops' (every event).

Events: ``offer_made``, ``offer_expiring``, ``lead_reclaimed``, ``lead_won``.
Each POST is signed: ``X-Fairlead-Signature: t=<unix>,v1=<HMAC-SHA256 of "t." + body>``
with the subscription's secret, shown once when it is created.  Failed
deliveries are retried with exponential backoff; every attempt is listed under
``/webhooks/{id}/deliveries``.

Destinations (against server-side request forgery): the URL must be ``http`` or
``https``, name a host, carry no ``user:pass@`` and have a port in 1-65535.  By
default its host — an IP literal or every address its name resolves to — must
be public: loopback, private, link-local, shared, multicast, reserved and
unspecified addresses are refused with a 422 naming the address, unless the
operator sets ``FAIRLEAD_WEBHOOK_ALLOW_PRIVATE=1``; a name that does not resolve
is refused too.  When ``FAIRLEAD_WEBHOOK_ALLOWED_HOSTS`` is set (``hooks.example.com``,
``*.example.com``, comma-separated), only those hosts are accepted, in addition.
The same check runs before every delivery, since DNS may change after
subscribing: a refused delivery is not sent and is logged as ``failed`` with the
reason, never retried.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException, Path, Query, Response, status

from service.api.deps import PARTNER, CallerDep, ClockDep, SessionDep, SettingsDep
from service.api.errors import NotFoundError, responses
from service.api.fields import RowId
from service.api.lifecycle_schemas import (
    DeliveryPublic,
    WebhookCreate,
    WebhookCreated,
    WebhookPublic,
)
from service.api.routes._router import protected_router
from service.api.schemas import Page
from service.api.storage import commit_or_conflict
from service.db import audit, outbox
from service.db.keys import Principal
from service.db.tables import Partner, WebhookSubscription

router = protected_router("/webhooks", "webhooks")


def _own(session: SessionDep, caller: Principal, subscription_id: int) -> WebhookSubscription:
    row = session.get(WebhookSubscription, subscription_id)
    if row is None or (caller.role == PARTNER and row.partner_id != caller.partner_id):
        raise NotFoundError("webhook subscription", subscription_id)
    return row


@router.post("", response_model=WebhookCreated, status_code=status.HTTP_201_CREATED,
             summary="Subscribe a URL to lifecycle events (the signing secret is shown once)",
             responses=responses(400, 403, 404, 422))
def subscribe(body: WebhookCreate, session: SessionDep, caller: CallerDep,
              clock: ClockDep, settings: SettingsDep) -> WebhookCreated:
    """A partner key subscribes for its own partner; an admin key for a partner
    (``partner_id``) or for ops (no ``partner_id``: every event).  The URL must pass
    the destination policy (see the module docstring): a 422 says which rule it breaks."""
    partner_id = body.partner_id
    if caller.role == PARTNER:
        if partner_id not in (None, caller.partner_id):
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"A partner key subscribes only for its own partner "
                                f"({caller.partner_id!r}), not {partner_id!r}.")
        partner_id = caller.partner_id
    elif partner_id is not None and session.get(Partner, partner_id) is None:
        raise NotFoundError("partner", partner_id)
    row = outbox.subscribe(session, partner_id, body.url, body.events, caller.actor,
                           clock.now(), settings.webhook_destinations())
    audit.record(session, actor=caller.actor, actor_role=caller.role,
                 action="webhook.subscribed", entity_type="webhook", entity_id=str(row.id),
                 partner_id=partner_id, at=clock.now(),
                 detail={"url": row.url, "events": list(row.events)})
    commit_or_conflict(session, "webhook subscriptions")
    return WebhookCreated.model_validate(row, from_attributes=True)


@router.get("", response_model=Page[WebhookPublic],
            summary="Active subscriptions (a partner key: its own)", responses=responses(422))
def list_subscriptions(
    session: SessionDep,
    caller: CallerDep,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[WebhookPublic]:
    if caller.role == PARTNER:
        rows = outbox.subscriptions(session, caller.partner_id, only_partner=True)
    else:
        rows = outbox.subscriptions(session)
    items = [WebhookPublic.model_validate(r, from_attributes=True) for r in rows]
    return Page(items=items[offset:offset + limit], total=len(items), offset=offset,
                limit=limit)


@router.delete("/{subscription_id}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Stop a subscription (its delivery log is kept)",
               responses=responses(404, 422))
def unsubscribe(subscription_id: Annotated[RowId, Path()], session: SessionDep,
                caller: CallerDep, clock: ClockDep) -> Response:
    row = _own(session, caller, subscription_id)
    if not row.active:
        raise NotFoundError("active webhook subscription", subscription_id)
    row.active = False
    row.deleted_at = clock.now()
    audit.record(session, actor=caller.actor, actor_role=caller.role,
                 action="webhook.unsubscribed", entity_type="webhook",
                 entity_id=str(row.id), partner_id=row.partner_id, at=clock.now())
    commit_or_conflict(session, "webhook subscriptions")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{subscription_id}/deliveries", response_model=Page[DeliveryPublic],
            summary="Every delivery attempt of a subscription, oldest first",
            responses=responses(404, 422))
def list_deliveries(
    subscription_id: Annotated[RowId, Path()],
    session: SessionDep,
    caller: CallerDep,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[DeliveryPublic]:
    _own(session, caller, subscription_id)
    total, rows = outbox.deliveries(session, subscription_id, offset, limit)
    return Page(items=[DeliveryPublic.model_validate(r, from_attributes=True) for r in rows],
                total=total, offset=offset, limit=limit)
