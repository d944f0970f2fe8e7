"""``fairlead simulate``: a synthetic channel with known true conversion probabilities."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from models.simulate import describe_channel, simulate_channel, write_channel
from service.cli.common import emit_json, err_console, handle_errors, out_console

_STAGES = {"partners": "drawing partners", "leads": "drawing the round's leads",
           "history": "drawing the round-robin history", "truth": "computing true probabilities"}


def _percent(value: Any) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _table(facts: dict[str, Any], out: Path) -> Table:
    table = Table(title=f"simulated channel in {out}", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    active = facts["active_partners"]
    table.add_row("partners (active)", f"{facts['partners']} ({active})")
    table.add_row("tier shares", ", ".join(f"{t} {_percent(s)}"
                                            for t, s in facts["tier_shares"].items()))
    table.add_row("capacity per lead of the round", f"{facts['capacity_per_lead']:.2f}")
    table.add_row("leads in the round", str(facts["leads"]))
    table.add_row("  below qualification 40", _percent(facts["below_qualification_40"]))
    table.add_row("  with an account owner", _percent(facts["with_account_owner"]))
    table.add_row("history rows (round robin)", str(facts["history"]))
    table.add_row("  conversion rate", _percent(facts["history_conversion_rate"]))
    if "eligible_pairs" in facts:
        table.add_row("eligible pairs (truth.csv)", str(facts["eligible_pairs"]))
        table.add_row("  leads with an eligible partner", str(facts["leads_with_eligible_partner"]))
        table.add_row("  eligible partners per lead", f"{facts['eligible_partners_per_lead']:.1f}")
        table.add_row("  mean true p", f"{facts['mean_p_true']:.4f}")
        ratio = facts["best_to_mean_p"]
        table.add_row("  best / mean p per lead", "-" if ratio is None else f"{ratio:.2f}")
    return table


@handle_errors
def simulate(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the files into "
                                      "(created; files of the same name are replaced).")],
    partners: Annotated[int, typer.Option("--partners", min=1, help="Number of partners.")] = 200,
    leads: Annotated[int, typer.Option("--leads", min=0,
                                       help="Leads in the round to allocate.")] = 5000,
    history: Annotated[int, typer.Option("--history", min=0,
                                         help="Past assignments with outcomes.")] = 20_000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed: same seed, same files.")] = 0,
    truth: Annotated[bool, typer.Option("--truth", help="Also write truth.csv: the true "
                                        "probability of every eligible pair.")] = False,
    as_json: Annotated[bool, typer.Option("--json",
                                          help="Print a JSON summary on stdout.")] = False,
) -> None:
    """Write a synthetic channel: partners.csv, leads.csv, history.csv, policy.toml (+ truth.csv).

    The folder is a ready round for `fairlead allocate` and a history for
    `fairlead train`; conversion follows a stated formula (models/simulate.py).
    """
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=err_console, transient=True) as progress:
        task = progress.add_task("starting", total=None)
        channel = simulate_channel(
            partners, leads, history, seed, with_truth=truth,
            progress=lambda stage: progress.update(task, description=_STAGES.get(stage, stage)))
        progress.update(task, description=f"writing files into {out}")
        files = write_channel(channel, out)
    facts = describe_channel(channel)
    if as_json:
        emit_json({**facts, "seed": seed, "out": str(out),
                   "files": {name: str(path) for name, path in files.items()}})
        return
    out_console.print(_table(facts, out))
    out_console.print("wrote " + ", ".join(path.name for path in files.values()))


def register(app: typer.Typer) -> None:
    """Add ``simulate`` to ``app``."""
    app.command("simulate")(simulate)
