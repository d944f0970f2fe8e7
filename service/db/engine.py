"""Engines and sessions for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Foreign keys are off by default in SQLite; WAL lets readers run beside the
    # one writer, and busy_timeout makes a second writer wait instead of failing.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.close()


def make_engine(url: str) -> Engine:
    """Create an engine for ``url`` with the settings each backend needs.

    Parameters
    ----------
    url : str
        SQLAlchemy URL, e.g. ``sqlite:///./fairlead.db`` or
        ``postgresql+psycopg://user@host:5432/db``.

    Returns
    -------
    Engine

    Raises
    ------
    ValueError
        If the URL names a backend other than SQLite or PostgreSQL.
    """
    parsed = sa.make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
        if parsed.database in (None, "", ":memory:"):
            # One shared connection, or every session would see its own empty database.
            kwargs["poolclass"] = StaticPool
        engine = sa.create_engine(parsed, **kwargs)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if backend == "postgresql":
        # Ten connections, all kept: with overflow connections (closed again on return), a
        # burst of requests opens and closes one per request, and that cost kept a server at
        # 100 req/s from ever catching up; without them a burst waits for a pooled one.
        return sa.create_engine(parsed, pool_pre_ping=True, pool_size=10, max_overflow=0)
    raise ValueError(
        f"The database URL must name SQLite or PostgreSQL (sqlite:///FILE or "
        f"postgresql+psycopg://...). Got backend '{backend}' instead."
    )


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit (responses are built after it)."""
    return sessionmaker(engine, expire_on_commit=False)
