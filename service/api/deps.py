"""Typed dependencies of the API, and who may call what.

Every request carries an API key in the ``X-API-Key`` header (created with
``fairlead keys create``).  :func:`authorize` resolves the key and looks the
matched route up in :data:`ACCESS`; a route missing from the table is refused
for everyone (fail closed), so a new route cannot become reachable by accident.

Access matrix (``partner`` = only the partner's own data; ``-`` = 403)::

    route                                        admin analyst viewer partner
    GET  /me                                       ✓     ✓       ✓      ✓
    POST /partners, /partners/upload               ✓     -       -      -
    GET  /partners                                 ✓     ✓       ✓      -
    GET  /partners/{partner_id}                    ✓     ✓       ✓      own
    POST /leads, /leads/upload                     ✓     -       -      -
    GET  /leads, /leads/{lead_id}                  ✓     ✓¹      -      -
    POST /history, /history/upload; GET /history   ✓     ✓       -      -
    POST /policies                                 ✓     -       -      -
    GET  /policies, /policies/{policy_id}          ✓     ✓       ✓      -
    POST /rounds                                   ✓     -       -      -
    GET  /rounds, /rounds/{id}, …/fairness         ✓     ✓       ✓      -
    GET  /rounds/{id}/assignments, /assignments,
         /assignments/{id}, …/explanation          ✓     ✓¹      -      own²
    GET  /models                                   ✓     ✓       ✓      -
    POST /models, /models/{version}/promote        ✓     ✓       -      -
    GET  /audit                                    ✓     -       -      own³
    GET  /offers, /offers/{id}                     ✓     -       -      own²
    POST /offers/{id}/accept, …/reject,
         …/disposition                             ✓     -       -      own
    GET  /pool                                     ✓     -       -      own⁴
    POST /pool/{lead_id}/claim                     -     -       -      ✓⁴
    POST /route                                    ✓     -       -      -
    POST /webhooks; GET /webhooks,
         …/{id}/deliveries; DELETE /webhooks/{id}  ✓     -       -      own
    POST /lifecycle/sweep                          ✓     -       -      -
    GET  /partners/{partner_id}/performance        ✓     -       -      own
    GET  /history/export                           ✓     ✓       -      -

¹ analysts see lead features, never contact details (they train models, they
  do not call leads).
² a partner sees only assignments made to it; contact details only once it
  has accepted the lead, and competitors are never named in its reasons.
³ entries about its own assignments and its own key.
⁴ pooled leads its tier sees now and it is eligible for (blind); a claim is a
  partner's act, so only partner keys claim.

``GET /health`` and the documentation (``/docs``, ``/openapi.json``) need no key.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader
from sqlalchemy.orm import Session

from service.db.keys import Principal, authenticate
from service.lifecycle.clock import Clock
from service.settings import Settings

ADMIN, ANALYST, VIEWER, PARTNER = "admin", "analyst", "viewer", "partner"
ALL_ROLES = frozenset({ADMIN, ANALYST, VIEWER, PARTNER})
_OPS = frozenset({ADMIN})
_DATA = frozenset({ADMIN, ANALYST})
_READ = frozenset({ADMIN, ANALYST, VIEWER})
_OWN = frozenset({ADMIN, ANALYST, PARTNER})
_ADMIN_OR_PARTNER = frozenset({ADMIN, PARTNER})

#: (method, route path) -> roles allowed.  Routes absent here are refused.
ACCESS: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/me"): ALL_ROLES,
    ("POST", "/partners"): _OPS,
    ("POST", "/partners/upload"): _OPS,
    ("GET", "/partners"): _READ,
    ("GET", "/partners/{partner_id}"): ALL_ROLES,
    ("POST", "/leads"): _OPS,
    ("POST", "/leads/upload"): _OPS,
    ("GET", "/leads"): _DATA,
    ("GET", "/leads/{lead_id}"): _DATA,
    ("POST", "/history"): _DATA,
    ("POST", "/history/upload"): _DATA,
    ("GET", "/history"): _DATA,
    ("POST", "/policies"): _OPS,
    ("GET", "/policies"): _READ,
    ("GET", "/policies/{policy_id}"): _READ,
    ("POST", "/rounds"): _OPS,
    ("GET", "/rounds"): _READ,
    ("GET", "/rounds/{round_id}"): _READ,
    ("GET", "/rounds/{round_id}/fairness"): _READ,
    ("GET", "/rounds/{round_id}/assignments"): _OWN,
    ("GET", "/assignments"): _OWN,
    ("GET", "/assignments/{assignment_id}"): _OWN,
    ("GET", "/assignments/{assignment_id}/explanation"): _OWN,
    ("GET", "/models"): _READ,
    ("POST", "/models"): _DATA,
    ("POST", "/models/{version}/promote"): _DATA,
    ("GET", "/audit"): frozenset({ADMIN, PARTNER}),
    ("GET", "/offers"): _ADMIN_OR_PARTNER,
    ("GET", "/offers/{assignment_id}"): _ADMIN_OR_PARTNER,
    ("POST", "/offers/{assignment_id}/accept"): _ADMIN_OR_PARTNER,
    ("POST", "/offers/{assignment_id}/reject"): _ADMIN_OR_PARTNER,
    ("POST", "/offers/{assignment_id}/disposition"): _ADMIN_OR_PARTNER,
    ("GET", "/pool"): _ADMIN_OR_PARTNER,
    ("POST", "/pool/{lead_id}/claim"): frozenset({PARTNER}),
    ("POST", "/route"): _OPS,
    ("POST", "/webhooks"): _ADMIN_OR_PARTNER,
    ("GET", "/webhooks"): _ADMIN_OR_PARTNER,
    ("DELETE", "/webhooks/{subscription_id}"): _ADMIN_OR_PARTNER,
    ("GET", "/webhooks/{subscription_id}/deliveries"): _ADMIN_OR_PARTNER,
    ("POST", "/lifecycle/sweep"): _OPS,
    ("GET", "/partners/{partner_id}/performance"): _ADMIN_OR_PARTNER,
    ("GET", "/history/export"): _DATA,
}

#: Routes anyone may call without a key.
PUBLIC: frozenset[tuple[str, str]] = frozenset({("GET", "/health")})

api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="API key from `fairlead keys create` (shown once at creation).",
)


# Dependencies that only read app.state are ``async``: FastAPI runs a plain ``def`` one in
# the thread pool, a hop that costs more than the read.
async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_clock(request: Request) -> Clock:
    """The app's clock (a :class:`~service.lifecycle.clock.FrozenClock` in tests)."""
    clock: Clock = request.app.state.clock
    return clock


def get_session(request: Request) -> Iterator[Session]:
    """One session per request; the handler commits what it changes."""
    with request.app.state.sessionmaker() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
ClockDep = Annotated[Clock, Depends(get_clock)]


def authorize(
    request: Request,
    session: SessionDep,
    token: Annotated[str | None, Security(api_key_header)] = None,
) -> Principal:
    """The caller, after checking its key and that its role may use this route.

    Raises
    ------
    HTTPException
        401 without a valid key, 403 when the role may not use the route.
    """
    if not token:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "This route needs an API key in the X-API-Key header.",
            headers={"WWW-Authenticate": "APIKey"},
        )
    principal = authenticate(session, token)
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "The API key is not valid (unknown, malformed or revoked).",
            headers={"WWW-Authenticate": "APIKey"},
        )
    route: Any = request.scope.get("route")
    allowed = ACCESS.get((request.method, getattr(route, "path", "")), frozenset())
    if principal.role not in allowed:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"A {principal.role} key may not use {request.method} "
            f"{getattr(route, 'path', request.url.path)}.",
        )
    return principal


CallerDep = Annotated[Principal, Depends(authorize)]


def partner_scope(caller: Principal, partner_id: str | None) -> str | None:
    """The partner filter a caller may use: its own for a partner key, else what it asked.

    Raises
    ------
    HTTPException
        403 when a partner key asks for another partner's data.
    """
    if caller.role != PARTNER:
        return partner_id
    if partner_id is not None and partner_id != caller.partner_id:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"A partner key reads only its own partner's data ({caller.partner_id!r}), "
            f"not {partner_id!r}.",
        )
    return caller.partner_id
