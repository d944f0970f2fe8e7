"""The service's one settings object, read from ``FAIRLEAD_*`` environment variables.

``FAIRLEAD_DATABASE_URL`` picks the store (an SQLite file by default, PostgreSQL
by URL, e.g. ``postgresql+psycopg://user@host/db``); ``FAIRLEAD_MODEL_DIR`` is
the model registry folder whose promoted version scores the rounds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.lifecycle.destinations import DestinationPolicy, normalize_pattern


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
    webhook_allow_private : bool
        Accept webhook URLs whose host is, or resolves to, a loopback, private,
        link-local, shared, multicast, reserved or unspecified address (off by
        default: a partner must not make the service call inside the operator's
        network).  Checked at subscription and again before every delivery.
    webhook_allowed_hosts : list of str
        When not empty, webhook URLs must name one of these hosts, exactly or by
        a ``*.suffix`` pattern (names under the suffix); in addition to the
        address rule.  In the environment: comma-separated or a JSON list.
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
    webhook_allow_private: bool = False
    webhook_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    realtime_expected_arrivals: int | None = Field(default=None, ge=1)

    @field_validator("webhook_allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        # "a.com,*.b.com" reads better in an environment variable than JSON; both work.
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    return json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ValueError("The allowed webhook hosts must be comma-separated or a "
                                     f"JSON list of strings ({exc}).") from None
            return [part for part in text.split(",") if part.strip()]
        return value

    @field_validator("webhook_allowed_hosts")
    @classmethod
    def _check_hosts(cls, value: list[str]) -> list[str]:
        return [normalize_pattern(p) for p in value]

    def webhook_destinations(self) -> DestinationPolicy:
        """The policy webhook URLs are checked against, at subscription and at delivery."""
        return DestinationPolicy(allow_private=self.webhook_allow_private,
                                 allowed_hosts=tuple(self.webhook_allowed_hosts))
