"""``fairlead train`` and ``fairlead models list|promote|rollback``: the registry from a shell."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from models.registry import ModelRegistry
from models.train import train_model
from service.cli.common import emit_json, err_console, handle_errors, out_console
from service.contract import load_history, load_partners

ModelDir = Annotated[
    Path, typer.Option("--model-dir", help="Registry folder of model versions.")
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")]


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _signed(value: Any) -> str:
    return "-" if value is None else f"{value:+.4f}"


@handle_errors
def train(
    history: Annotated[Path, typer.Option("--history", help="Outcome history (CSV or Parquet).")],
    model_dir: ModelDir,
    partners: Annotated[
        Path | None, typer.Option("--partners", help="Partners file joined by partner_id.")
    ] = None,
    target: Annotated[
        str, typer.Option("--target", help="Outcome column: yes/no, true/false or 1/0.")
    ] = "converted",
    exclude: Annotated[
        str, typer.Option("--exclude", help="Comma-separated columns to leave out (leaky ones).")
    ] = "",
    promote: Annotated[
        bool | None,
        typer.Option("--promote/--no-promote",
                     help="Promote the new version (default: only when none is promoted)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Train the conversion model, report held-out AUC, log loss, Brier and ECE, save a version.

    A ``stage`` column (accepted, contacted, qualified, opportunity, won) is read as
    the funnel outcome the partner effects are fitted on, never as a feature.
    """
    err_console.print(f"reading {history}")
    frame = load_history(history, target=target)
    partner_frame = None if partners is None else load_partners(partners)
    result = train_model(
        frame, partner_frame, target=target,
        exclude=[c for c in exclude.split(",") if c.strip()],
        model_dir=model_dir, promote=promote,
        progress=lambda msg: err_console.print(msg),
    )
    if as_json:
        emit_json(result.summary())
        return
    summary = result.summary()
    table = Table(title=f"model {result.version} ({result.chosen}) — held-out figures")
    table.add_column("model")
    for name in ("auc", "log_loss", "brier", "ece"):
        table.add_column(name, justify="right")
    table.add_row(f"{result.chosen} (kept)", *(_fmt(summary["metrics"][k])
                                                for k in ("auc", "log_loss", "brier", "ece")))
    base = summary["baseline"]
    table.add_row(base["model"], *(_fmt(base[k]) for k in ("auc", "log_loss", "brier", "ece")))
    prev = result.previous
    if prev is not None:
        same_rows = prev["on_this_holdout"] is not None
        figures = prev["on_this_holdout"] if same_rows else prev["metrics"]
        label = "on this holdout" if same_rows else "as recorded"
        table.add_row(f"previous {prev['version']} ({label})",
                      *(_fmt(figures[k]) for k in ("auc", "log_loss", "brier", "ece")))
        table.add_row("change", *(_signed(prev["change"][k])
                                  for k in ("auc", "log_loss", "brier", "ece")))
    out_console.print(table)
    if prev is not None:
        err_console.print(f"comparison with {prev['version']}: {prev['comparison']}")
    if result.by_tier:
        tiers = Table(title="by tier")
        for col in ("tier", "rows", "observed", "predicted", "auc", "ece"):
            tiers.add_column(col, justify="right" if col != "tier" else "left")
        for tier, m in result.by_tier.items():
            tiers.add_row(tier, str(m["n"]), _fmt(m["observed_rate"]),
                          _fmt(m["mean_predicted"]), _fmt(m["auc"]), _fmt(m["ece"]))
        out_console.print(tiers)
    promoted = "promoted" if result.promoted else "not promoted"
    out_console.print(f"saved {result.version} in {model_dir} ({promoted}); "
                      f"reliability diagram: {result.reliability_png}")


@handle_errors
def list_versions(model_dir: ModelDir, as_json: JsonFlag = False) -> None:
    """List the versions of a registry folder with their held-out figures."""
    registry = ModelRegistry(model_dir)
    versions = registry.list()
    if as_json:
        emit_json({
            "promoted": registry.promoted(),
            "versions": [
                {"version": v.version, "created_at": v.created_at, "parent": v.parent,
                 "promoted": v.promoted,
                 "metrics": {k: v.metrics.get(k) for k in ("auc", "log_loss", "brier", "ece")},
                 "model": registry.metadata(v.version).get("model", {}).get("kind")}
                for v in versions
            ],
        })
        return
    if not versions:
        out_console.print(f"no model versions in {model_dir}")
        return
    table = Table(title=f"model versions in {model_dir}")
    for col in ("version", "promoted", "created_at", "parent", "auc", "log_loss", "brier", "ece"):
        table.add_column(col)
    for v in versions:
        table.add_row(v.version, "*" if v.promoted else "", v.created_at[:19], v.parent or "-",
                      *(_fmt(v.metrics.get(k)) for k in ("auc", "log_loss", "brier", "ece")))
    out_console.print(table)


@handle_errors
def promote_version(
    version: Annotated[str, typer.Argument(help="Version to promote, e.g. v0003.")],
    model_dir: ModelDir,
    as_json: JsonFlag = False,
) -> None:
    """Promote a version: scoring with this folder uses it from now on."""
    registry = ModelRegistry(model_dir)
    before = registry.promoted()
    registry.promote(version)
    if as_json:
        emit_json({"promoted": version, "previous": before})
    else:
        out_console.print(f"promoted {version} (was {before or 'none'})")


@handle_errors
def rollback(model_dir: ModelDir, as_json: JsonFlag = False) -> None:
    """Re-promote the version that was promoted before the current one."""
    registry = ModelRegistry(model_dir)
    before = registry.promoted()
    now = registry.rollback()
    if as_json:
        emit_json({"promoted": now, "previous": before})
    else:
        out_console.print(f"rolled back from {before} to {now}")


def register(app: typer.Typer) -> None:
    """Add ``train`` and the ``models`` group to ``app``."""
    app.command("train")(train)
    models_app = typer.Typer(help="List, promote and roll back model versions.",
                             no_args_is_help=True)
    models_app.command("list")(list_versions)
    models_app.command("promote")(promote_version)
    models_app.command("rollback")(rollback)
    app.add_typer(models_app, name="models")
