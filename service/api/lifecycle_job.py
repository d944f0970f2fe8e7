"""The service's background job: SLA sweep, re-pricing of real-time routing, webhook delivery.

One thread per worker process, started and stopped by the app's lifespan,
every ``settings.lifecycle_interval_s`` seconds.  Several workers (and a cron
``fairlead sweep``) may run it at once: the sweep and the delivery each take
their rows with row locks (PostgreSQL) or conditional updates (SQLite), so
every due offer is handled once and every event sent once.  A failing pass is
logged and the next one runs as usual.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from service.db.sweep import sweep
from service.lifecycle.webhooks import RetryPolicy
from service.notify import deliver_pending
from service.settings import Settings

log = logging.getLogger("fairlead.lifecycle")


class _StoppingError(Exception):
    """Raised from a retry wait when the service shuts down (the event's lease runs out and
    another worker sends it)."""


class LifecycleJob:
    """Runs :meth:`run_once` every ``interval_s`` seconds in a daemon thread."""

    def __init__(self, state: Any, settings: Settings, interval_s: float) -> None:
        self.state = state
        self.settings = settings
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fairlead-lifecycle",
                                        daemon=True)
        self.passes = 0
        self.failures = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _sleep(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise _StoppingError

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.run_once()

    def run_once(self) -> None:
        """One pass: sweep, re-price when due, deliver pending webhooks."""
        state, settings = self.state, self.settings
        try:
            report = sweep(state.sessionmaker, state.clock,
                           warn_within_hours=settings.offer_expiring_warning_hours)
            if report.expired or report.reclaimed or report.warned:
                log.info("sweep: %s", report.as_dict())
            state.routing.reprice_if_due(state.sessionmaker, state.clock.now())
            retry = RetryPolicy(max_attempts=settings.webhook_max_attempts,
                                base_delay_s=settings.webhook_base_delay_s,
                                timeout_s=settings.webhook_timeout_s, jitter=0.2)
            deliver_pending(state.sessionmaker, state.clock, retry=retry, sleep=self._sleep,
                            destinations=settings.webhook_destinations())
        except _StoppingError:
            pass
        except Exception:  # the job must outlive a bad pass; the next one retries
            self.failures += 1
            log.exception("lifecycle pass failed")
        finally:
            self.passes += 1
