"""Routers that need a key: every route on them passes :func:`service.api.deps.authorize`."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from service.api.deps import authorize
from service.api.errors import responses


def protected_router(prefix: str, tag: str) -> APIRouter:
    """A router whose routes all check the API key and the ACCESS table."""
    return APIRouter(
        prefix=prefix,
        tags=[tag],
        dependencies=[Depends(authorize)],
        responses=responses(401, 403),
    )
