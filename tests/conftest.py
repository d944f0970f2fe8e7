"""Shared fixtures: the PostgreSQL URL (skips with a visible reason when absent)."""

from __future__ import annotations

import os

import pytest


def _database_url() -> str | None:
    return os.environ.get("FAIRLEAD_TEST_DATABASE_URL") or None


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of a real PostgreSQL for the database tests.

    Skips (with the reason shown by ``-ra``) when ``FAIRLEAD_TEST_DATABASE_URL``
    is unset; fails when it is set but unreachable and ``FAIRLEAD_REQUIRE_DATABASE``
    is set, as in CI.
    """
    url = _database_url()
    if url is None:
        pytest.skip("FAIRLEAD_TEST_DATABASE_URL is not set: PostgreSQL tests skipped")
    import sqlalchemy as sa

    try:
        with sa.create_engine(url).connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:  # pragma: no cover - depends on the machine
        if os.environ.get("FAIRLEAD_REQUIRE_DATABASE"):
            pytest.fail(f"PostgreSQL at {url} is unreachable: {exc}")
        pytest.skip(f"PostgreSQL at {url} is unreachable: {exc}")
    return url
