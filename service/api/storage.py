"""Committing a request's changes: a constraint hit by a concurrent writer becomes a 409."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from service.api.errors import ConflictError


def commit_or_conflict(session: Session, what: str) -> None:
    """Commit, or roll back and raise :class:`ConflictError` when a constraint refuses it.

    The requests are validated against stored state before writing; a
    constraint can still refuse the commit when another request wrote the same
    rows in between, and then retrying is the answer.
    """
    try:
        session.commit()
    except sa.exc.IntegrityError as exc:
        session.rollback()
        raise ConflictError(
            f"Another request changed the same {what} at the same time "
            f"({type(exc.orig).__name__}); nothing was stored — send the request again."
        ) from None
