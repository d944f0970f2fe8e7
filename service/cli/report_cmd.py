"""``fairlead report``: the round's self-contained HTML page for people who do not read JSON."""

from __future__ import annotations

from pathlib import Path

import typer

from service.cli.common import emit_json, err_console, handle_errors
from service.report import build_report


def register(app: typer.Typer) -> None:
    """Add ``report`` to ``app``."""

    @app.command("report")
    @handle_errors
    def report(
        round_dir: Path = typer.Option(
            ..., "--round", help="Folder `fairlead allocate --out` wrote (summary.json, "
            "assignments.csv; frontier.csv/png when `fairlead frontier` wrote there too)."
        ),
        json_out: bool = typer.Option(False, "--json", help="Print the report's path as JSON."),
    ) -> None:
        """Write ROUND/report.html: one page, pictures inside, opens without a server."""
        err_console.print(f"building the report for {round_dir} ...")
        path = build_report(round_dir)
        if json_out:
            emit_json({"report": str(path), "bytes": path.stat().st_size})
        else:
            err_console.print(f"wrote {path}")
