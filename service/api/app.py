"""The app factory: settings in, a FastAPI app with its database and model out."""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service.api.errors import install_handlers
from service.api.lifecycle_job import LifecycleJob
from service.api.model_state import load_model_state, not_loaded
from service.api.routes import (
    assignments,
    audit,
    health,
    history,
    leads,
    lifecycle,
    models,
    offers,
    partners,
    policies,
    pool,
    rounds,
    routing,
    webhooks,
)
from service.db import migrate
from service.db.engine import make_engine, make_sessionmaker
from service.lifecycle.clock import Clock, SystemClock
from service.routing import RoutingCache
from service.settings import Settings

DESCRIPTION = """\
Distributes inbound sales leads to channel partners: load partners and leads,
run allocation rounds under a policy, read every assignment with its reasons,
the round's fairness figures and the audit trail.

Every route except `/health` needs an API key in the `X-API-Key` header
(`fairlead keys create --role admin`). Bad input is a 422 listing every problem
with its row, column, value and rule; an infeasible policy is a 409 naming the
rules in conflict.
"""


_TUNED = threading.Event()
#: Seconds a thread may hold the GIL while others wait (Python's default: 0.005).
SWITCH_INTERVAL_S = 0.001


def _tune_process() -> None:
    """Tune the interpreter for request latency, once per process (a test run starting many
    apps pays it once).

    - What is loaded at start (libraries, the model) lives as long as the process: frozen,
      it is left out of the collector's full passes, which otherwise walk it all (~160 ms
      here, every request of the process waiting; ~15 ms after).
    - Threads hand the GIL over after 1 ms instead of 5: a request that gives the GIL up for
      each statement (inside SQLite's write lock, say) gets it back sooner while the
      background job or other requests compute.  On the 100 req/s bench this took the p99
      of POST /route from 60-70 ms in some runs to 15-25 ms.
    """
    if not _TUNED.is_set():
        _TUNED.set()
        gc.collect()
        gc.freeze()
        sys.setswitchinterval(SWITCH_INTERVAL_S)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    if settings.migrate_on_start:
        migrate.upgrade(app.state.engine)
    app.state.model = load_model_state(settings.model_dir)
    _tune_process()
    job = None
    if settings.lifecycle_interval_s:
        job = LifecycleJob(app.state, settings, settings.lifecycle_interval_s)
        job.start()
    app.state.lifecycle_job = job
    try:
        yield
    finally:
        if job is not None:
            job.stop()
        app.state.routing.batcher.close()
        app.state.engine.dispose()


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    """Build the service.

    Parameters
    ----------
    settings : Settings, optional
        Defaults to :class:`Settings` read from the ``FAIRLEAD_*`` environment.
    clock : Clock, optional
        The time of offers, deadlines, the sweep and the audit log (default the
        system clock; tests pass a :class:`~service.lifecycle.clock.FrozenClock`).

    Returns
    -------
    FastAPI
        On startup (lifespan) it migrates the database to the newest schema
        (``settings.migrate_on_start``) and loads the promoted model from
        ``settings.model_dir`` when that registry exists, and starts the
        lifecycle job (SLA sweep, re-pricing, webhooks) every
        ``settings.lifecycle_interval_s`` seconds unless that is off.
    """
    settings = settings or Settings()
    app = FastAPI(
        title="fairlead",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.engine = make_engine(settings.database_url)
    app.state.sessionmaker = make_sessionmaker(app.state.engine)
    app.state.model = not_loaded()
    app.state.clock = clock or SystemClock()
    # SQLite takes one writer at a time: hot write paths queue on this lock in-process
    app.state.write_lock = (threading.Lock() if app.state.engine.dialect.name == "sqlite"
                            else None)
    app.state.routing = RoutingCache(write_lock=app.state.write_lock)
    app.state.lifecycle_job = None
    install_handlers(app)
    for module in (
        health,
        partners,
        leads,
        history,
        policies,
        rounds,
        assignments,
        offers,
        pool,
        routing,
        webhooks,
        lifecycle,
        models,
        audit,
    ):
        app.include_router(module.router)
    app.include_router(health.me_router)
    return app
