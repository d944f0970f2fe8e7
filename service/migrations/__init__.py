"""Alembic migrations of the service database (run in code, no alembic.ini)."""
