"""The service's one settings object, read from ``FAIRLEAD_*`` environment variables.

``FAIRLEAD_DATABASE_URL`` picks the store (an SQLite file by default, PostgreSQL
by URL, e.g. ``postgresql+psycopg://user@host/db``); ``FAIRLEAD_MODEL_DIR`` is
the model registry folder whose promoted version scores the rounds.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Configuration of the HTTP service and of the CLI commands that touch its database.

    Attributes
    ----------
    database_url : str
        SQLAlchemy URL of the store.
    model_dir : Path
        Model registry folder; the promoted version is loaded at startup when the
        folder exists, and the service runs without a model (saying so in
        ``/health``) when it does not.
    migrate_on_start : bool
        Bring the database schema to the newest migration when the app starts.
    round_time_limit_s : float or None
        Upper bound on the solver time of one round, whatever the policy says.
    """

    model_config = SettingsConfigDict(env_prefix="FAIRLEAD_", extra="ignore")

    database_url: str = "sqlite:///./fairlead.db"
    model_dir: Path = Path("./fairlead-models")
    migrate_on_start: bool = True
    round_time_limit_s: float | None = Field(default=60.0, gt=0)
