"""Service fixtures: a fresh, migrated database per test on SQLite and on PostgreSQL.

The schema is migrated once per session into a template (an SQLite file; a
PostgreSQL database), and each test gets a copy: a file copy, or
``CREATE DATABASE ... TEMPLATE``.  PostgreSQL databases are named with the
xdist worker and a random suffix, so parallel workers never share one, and
are dropped after the test.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from service.api.app import create_app
from service.db import migrate
from service.db.engine import make_engine, make_sessionmaker
from service.db.keys import create_key
from service.settings import Settings

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def _admin_engine(url: str) -> sa.Engine:
    return sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


def _with_database(url: str, name: str) -> str:
    return sa.make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    with engine.connect() as conn:  # fold the WAL into the file before copying it
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_template(postgres_url: str) -> Iterator[str]:
    name = f"fl_tpl_{_worker()}_{uuid.uuid4().hex[:8]}"
    admin = _admin_engine(postgres_url)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine = make_engine(_with_database(postgres_url, name))
    migrate.upgrade(engine)
    engine.dispose()
    yield name
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@contextmanager
def copied_database(request: pytest.FixtureRequest, backend: str, folder: Path) -> Iterator[str]:
    """URL of a new database copied from the migrated template, removed afterwards."""
    if backend == "sqlite":
        path = folder / "fairlead.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    base: str = request.getfixturevalue("postgres_url")
    template: str = request.getfixturevalue("postgres_template")
    name = f"fl_t_{_worker()}_{uuid.uuid4().hex[:10]}"
    admin = _admin_engine(base)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield _with_database(base, name)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database: SQLite file and PostgreSQL (each test runs on both)."""
    with copied_database(request, request.param, tmp_path) as url:
        yield url


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def sessions(engine: sa.Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    # The lifecycle job is off: tests run the sweep themselves, at the times they choose.
    return Settings(database_url=db_url, model_dir=tmp_path / "models", round_time_limit_s=20,
                    lifecycle_interval_s=None)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=True) as c:
        yield c


KeyMaker = Callable[..., dict[str, str]]


@pytest.fixture
def make_key(client: TestClient) -> KeyMaker:
    """``make_key("admin")`` / ``make_key("partner", "P1")`` -> headers carrying a new key."""

    def make(role: str, partner_id: str | None = None) -> dict[str, str]:
        with client.app.state.sessionmaker() as session:  # type: ignore[attr-defined]
            new = create_key(session, role, partner_id=partner_id, name=f"test {role}")
            session.commit()
        return {"X-API-Key": new.token}

    return make


@pytest.fixture
def admin(make_key: KeyMaker) -> dict[str, str]:
    return make_key("admin")
