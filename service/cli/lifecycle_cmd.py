"""``fairlead sweep`` (the SLA job, for cron) and ``fairlead export-history`` (training rows).

``fairlead sweep`` does what the service's background job does once: expire
offers past their accept deadline, reclaim accepted leads without contact,
re-route them or pool them, warn partners of offers about to expire, then
deliver pending webhooks.  It is safe to run while the service (or another
cron) runs it: every due offer is handled once (row locks with SKIP LOCKED on
PostgreSQL, conditional updates on SQLite).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import sqlalchemy as sa
import typer
from rich.table import Table

from service.cli.common import emit_json, err_console, handle_errors, out_console

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (default: FAIRLEAD_DATABASE_URL or "
                 "sqlite:///./fairlead.db)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")]


def _engine(db: str | None) -> sa.Engine:
    from service.db import migrate
    from service.db.engine import make_engine
    from service.settings import Settings

    try:
        engine = make_engine(db or Settings().database_url)
    except (ValueError, sa.exc.ArgumentError) as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None
    migrate.upgrade(engine)
    return engine


@handle_errors
def sweep_command(
    db: DbOption = None,
    webhooks: Annotated[bool, typer.Option(
        "--webhooks/--no-webhooks", help="Deliver pending webhook events after the sweep.")] = True,
    warn_hours: Annotated[float, typer.Option(
        "--warn-hours", min=0.0, help="Send offer_expiring for offers due within this many "
        "hours.")] = 4.0,
    as_json: JsonOption = False,
) -> None:
    """Run the SLA job once: expire, reclaim, re-route, pool, warn; deliver webhooks."""
    from service.db.engine import make_sessionmaker
    from service.db.sweep import sweep
    from service.lifecycle.clock import SystemClock
    from service.notify import deliver_pending
    from service.settings import Settings

    engine = _engine(db)
    try:
        sessions = make_sessionmaker(engine)
        clock = SystemClock()
        report = sweep(sessions, clock, warn_within_hours=warn_hours)
        summary = report.as_dict()
        if webhooks:
            # FAIRLEAD_WEBHOOK_ALLOW_PRIVATE / _ALLOWED_HOSTS apply here as in the service.
            sent = deliver_pending(sessions, clock,
                                   destinations=Settings().webhook_destinations())
            summary.update(webhooks_delivered=sent.delivered, webhooks_failed=sent.failed)
    finally:
        engine.dispose()
    if as_json:
        emit_json(summary)
        return
    table = Table(title=f"sweep at {summary['now']}")
    table.add_column("step")
    table.add_column("count", justify="right")
    for key, value in summary.items():
        if key != "now":
            table.add_row(key.replace("_", " "), str(value))
    out_console.print(table)


@handle_errors
def export_history_command(
    out: Annotated[Path, typer.Option("--out", help="The history.csv to write.")],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write the stored history (ingested rows and won/lost leads) for ``fairlead train``."""
    from service.db.engine import make_sessionmaker
    from service.db.outcomes import all_history, history_export

    engine = _engine(db)
    try:
        with make_sessionmaker(engine)() as session:
            frame = history_export(all_history(session))
    finally:
        engine.dispose()
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    converted = int(frame["converted"].sum()) if "converted" in frame and len(frame) else 0
    summary = {"out": str(out), "rows": len(frame), "converted": converted,
               "columns": [str(c) for c in frame.columns]}
    if as_json:
        emit_json(summary)
    else:
        err_console.print(f"wrote {len(frame)} history rows ({converted} converted) to {out}")


def register(app: typer.Typer) -> None:
    """Add ``fairlead sweep`` and ``fairlead export-history`` to ``app``."""
    app.command("sweep")(sweep_command)
    app.command("export-history")(export_history_command)
