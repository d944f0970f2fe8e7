"""``fairlead serve``: the HTTP service (SQLite file by default, PostgreSQL by URL)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from service.cli.common import err_console, handle_errors


@handle_errors
def serve(
    db: Annotated[
        str | None,
        typer.Option("--db", help="Database URL (default: FAIRLEAD_DATABASE_URL or "
                     "sqlite:///./fairlead.db); postgresql+psycopg://user@host/db for PostgreSQL."),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535)] = 8000,
    model_dir: Annotated[
        Path | None,
        typer.Option("--model-dir", help="Model registry folder (default: FAIRLEAD_MODEL_DIR)."),
    ] = None,
) -> None:
    """Run the HTTP service: migrates the database, loads the promoted model, serves /docs."""
    import sqlalchemy as sa
    import uvicorn

    from service.api.app import create_app
    from service.db import migrate
    from service.db.engine import make_engine
    from service.settings import Settings

    overrides: dict[str, object] = {}
    if db is not None:
        overrides["database_url"] = db
    if model_dir is not None:
        overrides["model_dir"] = model_dir
    settings = Settings(**overrides)  # type: ignore[arg-type]
    # Migrate before serving so a bad URL or schema fails here, with exit status 1 or 2.
    try:
        engine = make_engine(settings.database_url)
    except (ValueError, sa.exc.ArgumentError) as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    err_console.print(f"fairlead: database {engine.url.render_as_string(hide_password=True)}, "
                      f"model registry {settings.model_dir}; docs at http://{host}:{port}/docs")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


def register(app: typer.Typer) -> None:
    """Add ``fairlead serve`` to ``app``."""
    app.command("serve")(serve)
