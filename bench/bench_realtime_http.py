"""Latency of real-time routing over HTTP (``POST /route``) against the same work in process.

A simulated channel is loaded into a fresh database and a round is run over
part of its leads (its prices and pairs feed the router).  Then, in one run:

1. **in process** — what the endpoint does, minus HTTP, one new lead at a time:
   validate and score (``ScoringBatcher.score``: the one-lead fast path of
   :mod:`service.route_scoring`), ingest, ``service.routing.route_lead``
   (decide, take room, store), commit;
2. **over HTTP** — a real ``uvicorn`` server in its own process on 127.0.0.1
   (its background job every 5 s: sweep, re-pricing, webhooks), sent
   ``POST /route`` with new leads at a fixed rate (open loop: each request
   leaves on schedule whether or not earlier ones have returned) for a bounded
   time, after ``4 × workers`` untimed requests on new connections (every worker
   builds its routing context on its first request); latency is measured at the
   client.

The decision alone (``RealtimeRouter.route``) is timed too.  Reported: p50,
p90, p99 and max per mode, the rate answers came back at, the HTTP/in-process
ratio, the share of leads routed (the rest held: no partner's score beat its
price, or no room), and whether HTTP p99 meets the 50 ms target.  Each HTTP
run lasts ``--seconds`` (default 8; two rates by default, the target 100/s and
40/s); the script stops by itself and stops the server it started.  With
``--db`` naming a PostgreSQL server, the run gets a new database there
(``CREATE DATABASE``, dropped at the end), so runs never meet each other's leads.

Usage: ``.venv/bin/python bench/bench_realtime_http.py [--rates 100,40] [--seconds 8]
[--partners 60] [--workers 1] [--db postgresql+psycopg://...]``
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

POLICY = """
[objective]
value = "conversions"
[qualification]
min_score = 40
[fairness]
partner_floor = 0
[tiers.platinum]
[tiers.gold]
[tiers.silver]
[tiers.bronze]
"""


def _rows(frame: Any) -> list[dict[str, Any]]:
    from tests.service.api_support import rows

    return rows(frame)


@contextmanager
def fresh_database(url: str | None, folder: Path) -> Iterator[str]:
    """A new SQLite file, or a new database on the PostgreSQL server of ``url`` (dropped after)."""
    if url is None or not url.startswith("postgresql"):
        yield url or f"sqlite:///{folder / 'fairlead.db'}"
        return
    import sqlalchemy as sa

    name = f"fairlead_bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def setup(db_url: str, n_partners: int, n_round: int, n_arrivals: int, seed: int,
          model_dir: Path, model: bool = False) -> tuple[str, list[dict[str, Any]]]:
    """A migrated database with partners, a round, and an admin token; the arrivals to route.

    With ``model``, a conversion model is trained on the channel's history and promoted in
    ``model_dir`` first, so the round and every request score with it.
    """
    from fastapi.testclient import TestClient

    from models.simulate import simulate_channel
    from service.api.app import create_app
    from service.db.keys import create_key
    from service.settings import Settings

    ch = simulate_channel(n_partners, n_round + n_arrivals, 20_000 if model else 10, seed)
    if model:
        from models.train import train_model

        trained = train_model(ch.history, ch.partners, model_dir=model_dir, promote=True)
        print(f"model: {trained.version} ({trained.chosen}), trained on {len(ch.history)} rows")
    partners = ch.partners.copy()
    partners["capacity"] = partners["capacity"] * 4  # room for the day's arrivals as well
    leads = _rows(ch.leads)
    settings = Settings(database_url=db_url, model_dir=model_dir, lifecycle_interval_s=None)
    app = create_app(settings)
    with TestClient(app) as client:
        with app.state.sessionmaker() as s:
            token = create_key(s, "admin", name="bench").token
            s.commit()
        admin = {"X-API-Key": token}
        assert client.post("/partners", headers=admin,
                           json={"partners": _rows(partners)}).status_code == 200
        assert client.post("/leads", headers=admin,
                           json={"leads": leads[:n_round]}).status_code == 200
        r = client.post("/rounds", headers=admin, json={"policy": {"toml": POLICY}})
        assert r.status_code == 201, r.json()
    return token, leads[n_round:]


def in_process(db_url: str, arrivals: list[dict[str, Any]], model_dir: Path
               ) -> tuple[np.ndarray, int]:
    """Milliseconds per lead of the service function (what the endpoint runs), and routed."""
    import pandas as pd

    from models.registry import ModelRegistry
    from service.db import leads as leads_repo
    from service.db.engine import make_engine, make_sessionmaker
    from service.db.reroute import Actor
    from service.db.tables import Lead
    from service.lifecycle.clock import SystemClock
    from service.routing import RoutingCache, route_lead

    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    cache, clock, actor = RoutingCache(), SystemClock(), Actor("bench", "admin")
    registry = ModelRegistry(model_dir)
    version = registry.promoted() if model_dir.exists() else None
    model = registry.load(version) if version else None
    out, routed = [], 0
    try:
        for row in arrivals:
            t0 = time.perf_counter()
            with sessions() as s:  # what POST /route does, minus HTTP
                ctx = cache.get(s, model, version)
                scored = cache.batcher.score(ctx, row)
                leads_repo.ingest_leads(s, pd.DataFrame([scored.record]), "bench", "admin")
                s.flush()
                lead = s.get(Lead, row["lead_id"])
                assert lead is not None
                res = route_lead(s, ctx, lead, clock.now(), actor, scored=scored)
                s.commit()
            out.append((time.perf_counter() - t0) * 1e3)
            routed += res.routed
    finally:
        cache.batcher.close()
        engine.dispose()
    return np.asarray(out), routed


def decision_only(db_url: str, n: int) -> np.ndarray:
    """Milliseconds of ``RealtimeRouter.route`` alone on the round's own candidate lists."""
    import sqlalchemy as sa

    from service.db.engine import make_engine, make_sessionmaker
    from service.db.tables import RoundCandidates
    from service.routing import build_context

    engine = make_engine(db_url)
    try:
        with make_sessionmaker(engine)() as s:
            ctx = build_context(s, None, None)
            rows = s.execute(sa.select(RoundCandidates.partner_ids, RoundCandidates.scores)
                             .limit(n)).all()
    finally:
        engine.dispose()
    out = []
    for pids, scores in rows:
        parts = np.asarray([ctx.index[p] for p in pids], dtype=np.int64)
        t0 = time.perf_counter()
        ctx.router.route(parts, np.asarray(scores, dtype=float), commit=False)
        out.append((time.perf_counter() - t0) * 1e3)
    return np.asarray(out)


def serve(db_url: str, port: int, log: Path, workers: int) -> subprocess.Popen[bytes]:
    """``uvicorn`` serving the app on 127.0.0.1:``port``; returns once ``/health`` answers.

    Several workers share a listening socket made here with ``TCP_NODELAY`` (passed by
    ``--fd``; accepted connections inherit the option): the one ``uvicorn --workers``
    binds itself lacks it, and every answer then waits ~40 ms (Nagle's algorithm
    against the client's delayed ACK).
    """
    env = {**os.environ, "FAIRLEAD_DATABASE_URL": db_url,
           "FAIRLEAD_MODEL_DIR": str(log.parent / "models"),
           "FAIRLEAD_LIFECYCLE_INTERVAL_S": "5", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "service.api.app:create_app",
           "--log-level", "warning", "--no-access-log", "--workers", str(workers)]
    listener = None
    if workers > 1:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(2048)
        cmd += ["--fd", str(listener.fileno())]
    else:
        cmd += ["--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            pass_fds=() if listener is None else (listener.fileno(),))
    if listener is not None:
        listener.close()  # the server holds its own copy
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.terminate()
    raise RuntimeError(f"uvicorn did not come up; see {log}")


def over_http(port: int, token: str, arrivals: list[dict[str, Any]], rate: float,
              seconds: float, warm: int = 1) -> tuple[np.ndarray, int, int, float]:
    """Open-loop load: request k leaves at ``k / rate`` s; latency measured at the client.

    The first ``warm`` leads go first, untimed, each on a new connection (so that every
    worker has built its routing context), the last on the client's own pool.

    Returns latencies (ms), leads routed, errors, and the rate at which answers came back.
    """
    headers = {"X-API-Key": token}
    url = f"http://127.0.0.1:{port}"
    for row in arrivals[:warm - 1]:
        httpx.post(f"{url}/route", headers=headers, json={"lead": row}, timeout=60)
    timed = arrivals[warm:]
    n = min(len(timed), int(rate * seconds))
    lat = np.full(n, np.nan)
    routed = errors = 0
    lock = threading.Lock()
    client = httpx.Client(base_url=url, headers=headers, timeout=10,
                          limits=httpx.Limits(max_connections=64))

    def send(k: int) -> None:
        nonlocal routed, errors
        t0 = time.perf_counter()
        try:
            r = client.post("/route", json={"lead": timed[k]})
            ok, is_routed = r.status_code == 200, r.status_code == 200 and r.json()["routed"]
        except httpx.HTTPError:
            ok, is_routed = False, False
        lat[k] = (time.perf_counter() - t0) * 1e3
        with lock:
            errors += not ok
            routed += bool(is_routed)

    client.post("/route", json={"lead": arrivals[warm - 1]})  # the client's connection
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=32) as pool:
        for k in range(n):
            delay = start + k / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(send, k)
    served = n / (time.perf_counter() - start)
    client.close()
    return lat, routed, errors, served


def _stats(ms: np.ndarray) -> str:
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return (f"p50 {p50:7.2f}  p90 {p90:7.2f}  p99 {p99:7.2f}  max {ms.max():7.2f} ms "
            f"(n={ms.size})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", default="100,40",
                    help="request rates per second, one HTTP run each (the first is the target)")
    ap.add_argument("--seconds", type=float, default=8.0, help="length of each HTTP run")
    ap.add_argument("--partners", type=int, default=60)
    ap.add_argument("--round-leads", type=int, default=1000)
    ap.add_argument("--in-process", type=int, default=300, help="leads routed in process")
    ap.add_argument("--db", default=None, help="database URL (default: a new SQLite file)")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    ap.add_argument("--model", action="store_true",
                    help="score with a conversion model trained on 20k history rows "
                         "(default: the heuristic prior)")
    args = ap.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench-route-"))
    with fresh_database(args.db, folder) as db_url:
        run(args, folder, db_url)


def run(args: argparse.Namespace, folder: Path, db_url: str) -> None:
    """Set up, then time the decision alone, in process, and over HTTP at each rate."""
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    n_http = [int(r * args.seconds) for r in rates]
    t0 = time.perf_counter()
    warm = 4 * args.workers
    token, arrivals = setup(db_url, args.partners, args.round_leads,
                            args.in_process + sum(n_http) + len(rates) * warm, args.seed,
                            folder / "models", model=args.model)
    print(f"setup: {args.partners} partners, round of {args.round_leads} leads, "
          f"{time.perf_counter() - t0:.1f} s; database {db_url.split('@')[-1]}")

    decide = decision_only(db_url, 2000)
    local, local_routed = in_process(db_url, arrivals[:args.in_process], folder / "models")
    print(f"decision only (RealtimeRouter.route):  {_stats(decide)}")
    print(f"in process (what POST /route runs):    {_stats(local)}  "
          f"routed {local_routed}/{local.size}")
    port = _free_port()
    proc = serve(db_url, port, folder / "uvicorn.log", args.workers)
    runs = []
    try:
        at = args.in_process
        for rate, n in zip(rates, n_http, strict=True):
            lat, routed, errors, served = over_http(port, token, arrivals[at:at + warm + n],
                                                    rate, args.seconds, warm)
            at += warm + n
            lat = lat[np.isfinite(lat)]
            runs.append((rate, lat))
            print(f"HTTP POST /route at {rate:5.0f}/s -> {served:5.1f}/s: {_stats(lat)}  "
                  f"routed {routed}/{lat.size}, errors {errors}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    p50_local, p99_local = np.percentile(local, [50, 99])
    for rate, lat in runs:
        p50, p99 = np.percentile(lat, [50, 99])
        print(f"at {rate:g}/s: HTTP / in process p50 x{p50 / p50_local:.2f}, "
              f"p99 x{p99 / p99_local:.2f}; p99 < 50 ms: {'met' if p99 < 50 else 'MISSED'}")
    print(f"({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
          f"{args.workers} uvicorn worker(s))")


if __name__ == "__main__":
    main()
