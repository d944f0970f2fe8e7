"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

#: JSON documents: JSONB on PostgreSQL (indexable, compact), JSON text elsewhere.
JSONDoc = sa.JSON().with_variant(JSONB(), "postgresql")

#: 64-bit keys that still autoincrement on SQLite (where only INTEGER PRIMARY KEY does).
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    SQLite has no time zones and hands back naive datetimes; without this the
    same query would give aware values on PostgreSQL and naive ones on SQLite.
    Naive values written are taken to be UTC already.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def storable_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (no lone surrogates)") from None
    return value


def storable_json(value: object, what: str = "value", _depth: int = 0) -> None:
    """Check a JSON document's text (keys and strings) and nesting before it is stored.

    Raises
    ------
    ValueError
        Naming ``what`` and the rule broken.
    """
    if _depth > 32:
        raise ValueError(f"{what} is nested more than 32 levels deep")
    if isinstance(value, str):
        try:
            storable_text(value)
        except ValueError as exc:
            raise ValueError(f"{what}: {exc}") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            storable_json(key, what, _depth + 1)
            storable_json(item, what, _depth + 1)
    elif isinstance(value, list):
        for item in value:
            storable_json(item, what, _depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{what} must not contain NaN or infinity")
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
        raise ValueError(f"{what}: integers must be smaller than 2^53 in magnitude")
