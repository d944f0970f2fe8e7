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
    lifecycle_interval_s : float or None
        Seconds between two runs of the background job (SLA sweep: expire,
        reclaim, re-route, pool, warn; re-pricing of real-time routing; webhook
        delivery); ``None`` or 0 turns it off (tests drive it themselves; cron can
        run ``fairlead sweep`` instead).
    offer_expiring_warning_hours : float
        ``offer_expiring`` is sent once an offer is due within this many hours.
    webhook_max_attempts, webhook_base_delay_s, webhook_timeout_s
        Delivery retries (exponential backoff from the base delay) and the
        per-request timeout.
    realtime_expected_arrivals : int or None
        Leads expected between two rounds, for re-pricing real-time routing
        (default: the last round's number of leads).
    """

    model_config = SettingsConfigDict(env_prefix="FAIRLEAD_", extra="ignore")

    database_url: str = "sqlite:///./fairlead.db"
    model_dir: Path = Path("./fairlead-models")
    migrate_on_start: bool = True
    round_time_limit_s: float | None = Field(default=60.0, gt=0)
    lifecycle_interval_s: float | None = Field(default=60.0, ge=0)
    offer_expiring_warning_hours: float = Field(default=4.0, ge=0)
    webhook_max_attempts: int = Field(default=5, ge=1, le=20)
    webhook_base_delay_s: float = Field(default=2.0, ge=0)
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    realtime_expected_arrivals: int | None = Field(default=None, ge=1)
