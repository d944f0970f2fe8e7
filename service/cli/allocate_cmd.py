"""``fairlead allocate`` and ``fairlead solve``: one allocation round from files.

Both read the inputs (every problem of every file reported at once), run
:func:`service.pipeline.run_round`, and only then write ``assignments.csv``
and ``summary.json`` into ``--out``: a round that fails writes nothing.
Progress goes to stderr; ``--json`` prints the summary on stdout, otherwise a
short table compares the optimizer with each baseline rule.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.table import Table

from allocator.policy import Policy
from service.cli.common import emit_json, err_console, handle_errors, out_console
from service.cli.inputs import Loaders, load_round_inputs, pairs_after, promoted_model
from service.pipeline import RoundResult, run_round, write_round

PartnersOpt = Annotated[Path, typer.Option("--partners", help="partners.csv or .parquet")]
LeadsOpt = Annotated[Path, typer.Option("--leads", help="leads.csv or .parquet")]
PolicyOpt = Annotated[Path, typer.Option("--policy", help="policy.toml (rules of engagement)")]
OutOpt = Annotated[Path, typer.Option("--out", help="folder for assignments.csv and summary.json")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the summary as JSON on stdout")]
TimeOpt = Annotated[float | None, typer.Option(
    "--time-limit", min=0.001, help="solver time limit in seconds (default: the policy's)")]


def _progress(enabled: bool) -> Callable[[str], None] | None:
    if not enabled:
        return None

    def show(stage: str) -> None:
        err_console.print(f"[dim]·[/] {stage}")

    return show


_SHORT = {"round_robin": "round robin", "tier_weighted_round_robin": "tier-weighted RR",
          "greedy": "greedy best score", "rule_cascade": "tier cascade"}


def _report(result: RoundResult, paths: dict[str, Path], as_json: bool) -> None:
    s = result.summary
    if as_json:
        emit_json(s)
        return
    c = s["counts"]
    binding = sum(1 for r in s["rules"] if r["binding"])
    err_console.print(
        f"{s['status']}: {c['assigned']} of {c['in_round']} leads in the round assigned, "
        f"{c['held_back']} held back; {s['objective_kind']} {s['objective']:.4g} "
        f"(bound {s['bound']:.4g}, gap {100 * s['gap']:.2f}%, {s['method']}); "
        f"{binding} rule{'s' if binding != 1 else ''} bind; {s['scores_source']}")
    table = Table(title=f"optimizer vs baseline rules (expected {s['objective_kind']}; "
                  "broken: rules of the policy not kept; gini: of leads per partner)",
                  title_justify="left")
    table.add_column("rule", no_wrap=True)
    for col in ("expected", "vs opt", "assigned", "broken", "gini"):
        table.add_column(col, justify="right", no_wrap=True)

    def gini(f: dict[str, Any]) -> str:
        g = f.get("gini_leads")
        return "n/a" if g is None else f"{g:.3f}"

    table.add_row("optimizer", f"{s['objective']:.4g}", "", str(c["assigned"]),
                  str(len(s["verification"]["violations"])), gini(s["fairness"]))
    for name, b in s["baselines"].items():
        pct = b["vs_optimizer_pct"]
        table.add_row(_SHORT.get(name, name), f"{b['objective']:.4g}",
                      "n/a" if pct is None else f"{pct:+.1f}%", str(b["assigned"]),
                      str(len(b["verification"]["violations"])), gini(b["fairness"]))
    out_console.print(table)
    err_console.print(f"wrote {paths['assignments']} and {paths['summary']}")


@handle_errors
def allocate(
    partners: PartnersOpt,
    leads: LeadsOpt,
    policy: PolicyOpt,
    out: OutOpt,
    model: Annotated[Path | None, typer.Option(
        "--model", help="model registry folder: scores with its promoted version "
        "(without it: a heuristic prior, flagged in the summary)")] = None,
    as_json: JsonOpt = False,
    time_limit: TimeOpt = None,
) -> None:
    """One allocation round: eligibility, scores, optimal assignment, reasons, baselines."""
    from service.contract import load_leads, load_partners

    show = _progress(True)
    def files(pol: Policy | None) -> Loaders:
        loaders: Loaders = [("partners", lambda: load_partners(partners, pol)),
                            ("leads", lambda: load_leads(leads))]
        if model is not None:
            loaders.append(("model", lambda: promoted_model(model)))
        return loaders

    pol, frames = load_round_inputs(policy, files)
    result = run_round(frames["partners"], frames["leads"], pol, scorer=frames.get("model"),
                       time_limit_s=time_limit, progress=show)
    paths = write_round(result, out)
    _report(result, paths, as_json)


@handle_errors
def solve(
    pairs: Annotated[Path, typer.Option("--pairs", help="pairs.csv: lead_id, partner_id, score "
                                        "[, effort]")],
    partners: PartnersOpt,
    policy: PolicyOpt,
    out: OutOpt,
    leads: Annotated[Path | None, typer.Option(
        "--leads", help="leads.csv (intent for quotas, deal_size, effort; leads without a pair "
        "are reported as held back)")] = None,
    as_json: JsonOpt = False,
    time_limit: TimeOpt = None,
) -> None:
    """The same optimizer on scores you bring: every listed pair is eligible."""
    from service.contract import load_leads, load_partners

    show = _progress(True)
    def files(pol: Policy | None) -> Loaders:
        loaders: Loaders = [("partners", lambda: load_partners(partners, pol))]
        if leads is not None:
            loaders.append(("leads", lambda: load_leads(leads)))
        return loaders

    pol, frames = load_round_inputs(policy, files, pairs_after(pairs))
    lead_frame: pd.DataFrame | None = frames.get("leads")
    pair_frame = frames["pairs"]
    result = run_round(frames["partners"], lead_frame, pol, pairs=pair_frame,
                       time_limit_s=time_limit, progress=show)
    paths = write_round(result, out)
    _report(result, paths, as_json)


def register(app: typer.Typer) -> None:
    """Add ``allocate`` and ``solve`` to ``app``."""
    app.command("allocate")(allocate)
    app.command("solve")(solve)
