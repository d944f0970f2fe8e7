"""``fairlead frontier``: fairness against yield for one round, as a table and a picture.

Reads the round like ``fairlead allocate`` (or scores you bring with
``--pairs``), builds the problem once, sweeps the fairness floor with
:func:`allocator.frontier.compute_frontier` and writes ``frontier.csv`` (one
row per point, with its status: infeasible points are kept) and
``frontier.png`` (drawn afterwards from that table) into ``--out``.  Pointing
``--out`` at a round folder puts the frontier into ``fairlead report``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.table import Table

from allocator.errors import InputError, InputProblem
from allocator.frontier import DEFAULT_ALPHAS, Frontier, compute_frontier
from allocator.policy import Policy
from service.cli.common import emit_json, err_console, handle_errors, out_console
from service.cli.inputs import Loaders, load_round_inputs, pairs_after, promoted_model

FRONTIER_CSV = "frontier.csv"
FRONTIER_PNG = "frontier.png"


def parse_alphas(text: str | None, points: int) -> list[float]:
    """Fairness strengths from ``"0,0.25,1"``, or ``points`` evenly spaced from 0 to 1.

    Raises
    ------
    InputError
        Naming each value that is not a number between 0 and 1.
    """
    if text is None:
        if points == len(DEFAULT_ALPHAS):
            return list(DEFAULT_ALPHAS)
        return np.round(np.linspace(0.0, 1.0, points), 10).tolist()
    values, problems = [], []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            value = math.nan
        if not (0.0 <= value <= 1.0):
            problems.append(InputProblem("--alphas", None, "--alphas", part.strip(),
                                         "each fairness strength must be a number between "
                                         "0 and 1"))
        else:
            values.append(value)
    if problems:
        raise InputError(problems)
    return values


def _table(frontier: Frontier, unit: str) -> Table:
    table = Table(title=f"fairness against yield ({unit}; lost: against no floors)",
                  title_justify="left")
    for col, justify in (("point", "left"), ("status", "left"), (unit, "right"),
                         ("lost", "right"), ("floor leads", "right"), ("Jain", "right"),
                         ("worst-off", "right")):
        table.add_column(col, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for p in frontier.points:
        f = p.fairness
        table.add_row(
            p.label + (" *" if p.is_current else ""), p.status,
            "n/a" if math.isnan(p.objective) else f"{p.objective:.4g}",
            "n/a" if math.isnan(p.yield_lost_pct) else f"{p.yield_lost_pct:.2f}%",
            str(p.floor_total),
            "n/a" if f is None else f"{f.jain_leads:.3f}",
            "n/a" if f is None else f"{100 * f.worst_off_share:.0f}%",
        )
    return table


def _progress(line: str) -> None:
    err_console.print(f"[dim]·[/] {line}")


@handle_errors
def frontier(
    partners: Annotated[Path, typer.Option("--partners", help="partners.csv or .parquet")],
    policy: Annotated[Path, typer.Option("--policy", help="policy.toml (rules of engagement)")],
    out: Annotated[Path, typer.Option("--out", help="folder for frontier.csv and frontier.png "
                                      "(a round folder: the report picks them up)")],
    leads: Annotated[Path | None, typer.Option(
        "--leads", help="leads.csv or .parquet (required unless --pairs is given)")] = None,
    model: Annotated[Path | None, typer.Option(
        "--model", help="model registry folder: scores with its promoted version "
        "(without it and without --pairs: the heuristic prior)")] = None,
    pairs: Annotated[Path | None, typer.Option(
        "--pairs", help="pairs.csv: lead_id, partner_id, score [, effort]: scores you bring")
    ] = None,
    alphas: Annotated[str | None, typer.Option(
        "--alphas", help="fairness strengths, comma-separated, each 0..1 (default: 0, 0.1, ..., "
        "1)")] = None,
    points: Annotated[int, typer.Option(
        "--points", min=2, max=101, help="evenly spaced strengths when --alphas is not given")
    ] = len(DEFAULT_ALPHAS),
    time_limit: Annotated[float | None, typer.Option(
        "--time-limit", min=0.001, help="solver time limit per point in seconds (default: the "
        "policy's); only rounds with quotas or effort use it")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the frontier as JSON")] = False,
) -> None:
    """The fairness-versus-yield frontier: frontier.csv and frontier.png."""
    from allocator.build import build_problem
    from service.contract import load_leads, load_partners
    from service.pipeline import json_ready, score_round
    from service.report.plots import plot_frontier

    grid = parse_alphas(alphas, points)
    if leads is None and pairs is None:
        raise InputError([InputProblem("--leads", None, "--leads", None,
                                       "give --leads (scored by the model or the heuristic "
                                       "prior) or --pairs (scores you bring)")])
    def files(pol: Policy | None) -> Loaders:
        loaders: Loaders = [("partners", lambda: load_partners(partners, pol))]
        if leads is not None:
            loaders.append(("leads", lambda: load_leads(leads)))
        if model is not None and pairs is None:
            loaders.append(("model", lambda: promoted_model(model)))
        return loaders

    pol, frames = load_round_inputs(policy, files,
                                    None if pairs is None else pairs_after(pairs))

    scored = score_round(frames["partners"], frames.get("leads"), pol,
                         scorer=frames.get("model"), pairs=frames.get("pairs"),
                         progress=_progress)
    problem = build_problem(scored.pairs, scored.values, scored.leads, frames["partners"], pol,
                            effort=scored.effort)
    _progress(f"{problem.n_leads} leads, {problem.n_partners} partners, {problem.n_pairs} "
              f"eligible pairs; {len(grid)} fairness strengths")
    result = compute_frontier(problem, grid, time_limit_s=time_limit or pol.time_limit_s,
                              expected=scored.probability, progress=_progress)

    out.mkdir(parents=True, exist_ok=True)
    table = result.to_frame()
    table.to_csv(out / FRONTIER_CSV, index=False, float_format="%.10g")
    plot_frontier(table, out / FRONTIER_PNG)
    unit = "expected revenue" if pol.objective_value == "revenue" else "expected conversions"
    if scored.probability is None:
        unit = "score"
    if as_json:
        emit_json(json_ready({
            "unit": unit, "solver": result.solver, "time_s": result.time_s,
            "reference_objective": result.reference_objective,
            "points": table.to_dict("records"),
            "files": {"csv": str(out / FRONTIER_CSV), "png": str(out / FRONTIER_PNG)},
        }))
    else:
        out_console.print(_table(result, unit))
    err_console.print(f"{result.solver}: {len(result.points)} points in {result.time_s:.1f} s; "
                      f"wrote {out / FRONTIER_CSV} and {out / FRONTIER_PNG}")


def register(app: typer.Typer) -> None:
    """Add ``frontier`` to ``app``."""
    app.command("frontier")(frontier)
