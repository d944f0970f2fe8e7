"""``fairlead keys create|list|revoke``: API keys of the HTTP service.

The token is printed once at creation and only its sha256 is stored, so a
lost token cannot be shown again: revoke it and create another.
"""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
import typer
from rich.table import Table
from sqlalchemy.orm import Session, sessionmaker

from service.cli.common import emit_json, err_console, handle_errors, out_console
from service.db import migrate
from service.db.engine import make_engine, make_sessionmaker
from service.db.keys import create_key, list_keys, revoke_key
from service.db.tables import ROLES
from service.settings import Settings

keys_app = typer.Typer(help="API keys of the HTTP service (admin, analyst, viewer, partner).",
                       no_args_is_help=True)

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (default: FAIRLEAD_DATABASE_URL or "
                 "sqlite:///./fairlead.db)"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")]


def _sessions(db: str | None) -> tuple[sa.Engine, sessionmaker[Session]]:
    try:
        engine = make_engine(db or Settings().database_url)
    except (ValueError, sa.exc.ArgumentError) as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None
    migrate.upgrade(engine)
    return engine, make_sessionmaker(engine)


@keys_app.command("create")
@handle_errors
def create(
    role: Annotated[str, typer.Option("--role", help=f"One of: {', '.join(ROLES)}.")],
    partner: Annotated[
        str | None, typer.Option("--partner", help="Partner id (partner keys only).")
    ] = None,
    name: Annotated[str, typer.Option("--name", help="A label for humans.")] = "",
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a key and print its token once (store it now: it is not kept)."""
    engine, sessions = _sessions(db)
    try:
        with sessions() as session:
            try:
                new = create_key(session, role, partner_id=partner, name=name, actor="cli")
            except ValueError as exc:
                err_console.print(f"[bold red]error:[/] {exc}")
                raise typer.Exit(2) from None
            session.commit()
    finally:
        engine.dispose()
    if as_json:
        emit_json({"key_id": new.key_id, "role": new.role, "partner_id": new.partner_id,
                   "token": new.token})
        return
    err_console.print(f"created {new.role} key {new.key_id}"
                      + (f" for partner {new.partner_id}" if new.partner_id else "")
                      + " — the token below is shown once; send it as the X-API-Key header:")
    out_console.print(new.token, soft_wrap=True)


@keys_app.command("list")
@handle_errors
def list_(db: DbOption = None, as_json: JsonOption = False) -> None:
    """List keys (ids, roles, partners, revoked or not; never tokens)."""
    engine, sessions = _sessions(db)
    try:
        with sessions() as session:
            rows: list[dict[str, str | None]] = [
                {"key_id": k.key_id, "role": k.role, "partner_id": k.partner_id,
                 "name": k.name, "created_at": k.created_at.isoformat(),
                 "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None}
                for k in list_keys(session)
            ]
    finally:
        engine.dispose()
    if as_json:
        emit_json(rows)
        return
    table = Table("key id", "role", "partner", "name", "created", "revoked")
    for r in rows:
        table.add_row(r["key_id"], r["role"], r["partner_id"] or "", r["name"],
                      (r["created_at"] or "")[:19], (r["revoked_at"] or "")[:19])
    out_console.print(table)


@keys_app.command("revoke")
@handle_errors
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (second part of the token).")],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke a key: requests with it are refused from now on."""
    engine, sessions = _sessions(db)
    try:
        with sessions() as session:
            try:
                row = revoke_key(session, key_id, actor="cli")
            except KeyError as exc:
                err_console.print(f"[bold red]error:[/] {exc.args[0]}")
                raise typer.Exit(2) from None
            session.commit()
            revoked_at = row.revoked_at
    finally:
        engine.dispose()
    if as_json:
        emit_json({"key_id": key_id, "revoked_at": revoked_at.isoformat() if revoked_at else None})
        return
    err_console.print(f"revoked key {key_id}")


def register(app: typer.Typer) -> None:
    """Add ``fairlead keys`` to ``app``."""
    app.add_typer(keys_app, name="keys")
