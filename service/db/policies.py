"""Policies as run: stored once per content (the sha256 of the normalized policy is its version)."""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from allocator.errors import InputError, InputProblem
from allocator.policy import Policy, policy_from_dict
from service.contract import load_policy_text
from service.db import audit
from service.db.records import digest
from service.db.tables import StoredPolicy
from service.db.types import storable_json, utcnow


def policy_hash(policy: Policy) -> str:
    """sha256 of the validated policy: two files that mean the same policy share it."""
    return digest(dataclasses.asdict(policy))


def parse_policy(body: Mapping[str, Any] | None = None,
                 toml: str | None = None) -> tuple[Policy, dict[str, Any]]:
    """Validate a policy given as a mapping or as TOML text.

    Returns
    -------
    (Policy, dict)
        The policy and the mapping it was read from.

    Raises
    ------
    InputError
        Every problem in the policy.
    """
    if toml is not None:
        policy = load_policy_text(toml, file="policy.toml")
        data = tomllib.loads(toml)
        _check_storable(data, "policy.toml")
        return policy, data
    data = dict(body or {})
    policy = policy_from_dict(data, file="policy")
    _check_storable(data, "policy")
    return policy, data


def _check_storable(data: Mapping[str, Any], file: str) -> None:
    try:
        storable_json(data, what="policy")
    except ValueError as exc:
        raise InputError([InputProblem(file, None, None, None, str(exc))]) from None


def find_policy(session: Session, content_hash: str) -> StoredPolicy | None:
    """The stored policy with this content hash, if any."""
    return session.scalar(sa.select(StoredPolicy).where(StoredPolicy.content_hash == content_hash))


def store_policy(
    session: Session,
    policy: Policy,
    body: Mapping[str, Any],
    source_toml: str | None,
    actor: str,
    actor_role: str | None = None,
) -> tuple[StoredPolicy, bool]:
    """The stored row for ``policy``, inserting it when new (in the caller's transaction).

    Returns
    -------
    (StoredPolicy, bool)
        The row and whether it was created now.
    """
    content_hash = policy_hash(policy)
    found = find_policy(session, content_hash)
    if found is not None:
        return found, False
    # INSERT ... ON CONFLICT DO NOTHING: a concurrent request storing the same policy
    # first must not fail this one (a round) — it simply uses that row.  (A savepoint
    # would do on PostgreSQL, but pysqlite commits a lone SAVEPOINT on RELEASE.)
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    values = {"content_hash": content_hash, "body": dict(body), "source_toml": source_toml,
              "created_by": actor, "created_at": utcnow()}
    inserted = session.execute(
        insert(StoredPolicy).values(**values)
        .on_conflict_do_nothing(index_elements=["content_hash"])
        .returning(StoredPolicy.id)
    ).scalar()
    row = session.scalars(
        sa.select(StoredPolicy).where(StoredPolicy.content_hash == content_hash)
    ).one()
    if inserted is None:
        return row, False
    audit.record(session, actor=actor, actor_role=actor_role, action="policy.stored",
                 entity_type="policy", entity_id=str(row.id),
                 detail={"content_hash": content_hash})
    return row, True


def list_policies(session: Session, offset: int = 0,
                  limit: int = 100) -> tuple[int, Sequence[StoredPolicy]]:
    total = session.scalar(sa.select(sa.func.count()).select_from(StoredPolicy))
    rows = session.scalars(
        sa.select(StoredPolicy).order_by(StoredPolicy.id).offset(offset).limit(limit)
    ).all()
    return int(total or 0), rows


def load_stored(row: StoredPolicy) -> Policy:
    """The :class:`Policy` of a stored row (validated again: the rules may have grown)."""
    return policy_from_dict(row.body, file=f"policy {row.id}")
