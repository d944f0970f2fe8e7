"""API keys: created with a random secret, stored only as its sha256, checked in constant time.

A token reads ``flk_<key_id>_<secret>``: the key id finds the row without a
scan, the secret proves possession.  Only ``sha256(token)`` is stored, so a
copy of the database does not give anyone a working key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from service.db import audit
from service.db.tables import ROLES, ApiKey, Partner
from service.db.types import utcnow

TOKEN_PREFIX = "flk"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id, role and, for a partner key, its partner."""

    key_id: str
    role: str
    partner_id: str | None = None

    @property
    def actor(self) -> str:
        return f"key:{self.key_id}"


@dataclass(frozen=True)
class NewKey:
    """A freshly created key; ``token`` is shown once and never stored."""

    key_id: str
    role: str
    partner_id: str | None
    token: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_key(
    session: Session,
    role: str,
    partner_id: str | None = None,
    name: str = "",
    actor: str = "cli",
) -> NewKey:
    """Create an API key and record it in the audit log (the caller commits).

    Parameters
    ----------
    session : Session
    role : {"admin", "analyst", "viewer", "partner"}
    partner_id : str, optional
        Required for, and only allowed with, ``role="partner"``; the partner must exist.
    name : str
        A label for humans ("ops laptop", "P7 portal").
    actor : str
        Who creates it, for the audit log.

    Returns
    -------
    NewKey

    Raises
    ------
    ValueError
        If the role is unknown, a partner key has no partner (or another role
        has one), or the partner does not exist.
    """
    if role not in ROLES:
        raise ValueError(f"The role must be one of {', '.join(ROLES)}. Got {role!r} instead.")
    if role == "partner" and not partner_id:
        raise ValueError("A partner key must be bound to a partner: pass its partner_id.")
    if role != "partner" and partner_id:
        raise ValueError(
            f"Only partner keys are bound to a partner; a {role} key cannot name "
            f"partner {partner_id!r}."
        )
    if partner_id is not None and session.get(Partner, partner_id) is None:
        raise ValueError(
            f"Partner {partner_id!r} does not exist: load it before creating its key."
        )
    key_id = secrets.token_hex(6)
    token = f"{TOKEN_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    session.add(
        ApiKey(key_id=key_id, token_sha256=_digest(token), role=role, partner_id=partner_id,
               name=name)
    )
    audit.record(
        session,
        actor=actor,
        action="key.created",
        entity_type="api_key",
        entity_id=key_id,
        partner_id=partner_id,
        detail={"role": role, "name": name},
    )
    return NewKey(key_id=key_id, role=role, partner_id=partner_id, token=token)


def authenticate(session: Session, token: str) -> Principal | None:
    """The principal a token belongs to, or ``None`` for a wrong, unknown or revoked token."""
    parts = token.split("_")
    if len(parts) < 3 or parts[0] != TOKEN_PREFIX:
        return None
    key_id = parts[1]
    if not (0 < len(key_id) <= 32) or not all(c in "0123456789abcdef" for c in key_id):
        return None
    row = session.get(ApiKey, key_id)
    # Compare even for an unknown id so timing does not tell which ids exist.
    expected = row.token_sha256 if row is not None else "0" * 64
    if not hmac.compare_digest(expected, _digest(token)) or row is None:
        return None
    if row.revoked_at is not None:
        return None
    return Principal(key_id=row.key_id, role=row.role, partner_id=row.partner_id)


def list_keys(session: Session) -> Sequence[ApiKey]:
    """Every key, newest first (hashes included; never shown by the CLI)."""
    return session.scalars(sa.select(ApiKey).order_by(ApiKey.created_at.desc())).all()


def revoke_key(session: Session, key_id: str, actor: str = "cli") -> ApiKey:
    """Revoke a key (it stays listed, marked revoked) and audit it.

    Raises
    ------
    KeyError
        If no key has that id.
    """
    row = session.get(ApiKey, key_id)
    if row is None:
        raise KeyError(f"No API key has id {key_id!r}.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record(
            session,
            actor=actor,
            action="key.revoked",
            entity_type="api_key",
            entity_id=key_id,
            partner_id=row.partner_id,
            detail={"role": row.role},
        )
    return row
