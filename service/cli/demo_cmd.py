"""``fairlead demo``: the whole pipeline on a synthetic channel with the embedded database.

simulate → store in SQLite → train → allocate (stored as a round, with reasons
and audit entries) → compare with round robin and the other baselines, judged
by the *true* probabilities → frontier → report; ends with a summary table.
Everything lands in ``--out`` (default ``fairlead-demo/``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from service.cli.common import emit_json, err_console, handle_errors, out_console


def _say(line: str) -> None:
    err_console.print(f"[dim]·[/] {line}")


class _Stopwatch:
    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.stages: dict[str, float] = {}
        self._last = self.started

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.stages[name] = now - self._last
        self._last = now

    @property
    def total_s(self) -> float:
        return time.perf_counter() - self.started


def _store_channel(db_url: str, channel: Any, policy_text: str) -> dict[str, Any]:
    """Ingest partners, leads and history into the embedded database (idempotent)."""
    import tomllib

    from allocator.policy import policy_from_dict
    from service.contract import validate_history, validate_leads, validate_partners
    from service.db import history as history_repo
    from service.db import leads as leads_repo
    from service.db import partners as partners_repo
    from service.db.engine import make_engine, make_sessionmaker
    from service.db.migrate import upgrade

    policy = policy_from_dict(tomllib.loads(policy_text))
    engine = make_engine(db_url)
    upgrade(engine)
    with make_sessionmaker(engine)() as session:
        partners = partners_repo.upsert_partners(
            session, validate_partners(channel.partners, file="partners", policy=policy),
            actor="demo", actor_role="admin")
        leads = leads_repo.ingest_leads(session, validate_leads(channel.leads, file="leads"),
                                        actor="demo", actor_role="admin")
        created, unchanged = history_repo.ingest_history(
            session, validate_history(channel.history, file="history"), "converted",
            actor="demo", actor_role="admin")
        session.commit()
    engine.dispose()
    return {"partners_created": len(partners.created), "leads_created": len(leads.created),
            "leads_unchanged": len(leads.unchanged), "history_created": created,
            "history_unchanged": unchanged}


def _store_round(db_url: str, result: Any, policy_text: str, model_version: str | None) -> int:
    """Store the allocated round (assignments, reasons, audit entries) in one transaction."""
    from service.api.round_runner import plan_from_result
    from service.db import rounds as rounds_repo
    from service.db.engine import make_engine, make_sessionmaker

    engine = make_engine(db_url)
    with make_sessionmaker(engine)() as session:
        plan = plan_from_result(session, result, policy_text, model_version)
        stored = rounds_repo.store_round(session, plan, actor="demo", actor_role="admin")
        round_id = int(stored.id)
    engine.dispose()
    return round_id


def _summary_table(facts: dict[str, Any]) -> Table:
    dq = facts["decision_quality"]
    table = Table(title="fairlead demo — one round, judged by the true conversion probabilities",
                  title_justify="left")
    table.add_column("allocation", no_wrap=True)
    table.add_column("expected conversions", justify="right")
    table.add_column("vs round robin", justify="right")
    rr = dq["round_robin"]
    rows = [("oracle (optimizer on true p)", dq["oracle"]),
            ("fairlead (optimizer on model scores)", dq["model"])]
    rows += [(name.replace("_", " "), value) for name, value in dq["baselines"].items()]
    for name, value in rows:
        table.add_row(name, f"{value:,.1f}", f"{100 * (value - rr) / rr:+.1f}%" if rr else "n/a")
    return table


def _facts_table(facts: dict[str, Any]) -> Table:
    table = Table(show_header=False, title_justify="left")
    table.add_column("what", no_wrap=True)
    table.add_column("figure")
    ch, m, r = facts["channel"], facts["model"], facts["round"]
    table.add_row("channel", f"{ch['partners']} partners, {ch['leads']} leads, "
                  f"{ch['history']} history rows ({100 * ch['history_conversion']:.1f}% converted)")
    table.add_row("model", f"{m['version']} ({m['chosen']}): AUC {m['auc']:.3f}, log loss "
                  f"{m['log_loss']:.4f}, Brier {m['brier']:.4f}, ECE {m['ece']:.4f}")
    table.add_row("round", f"#{r['round_id']} {r['status']} ({r['method']}), gap {r['gap']:.2e}, "
                  f"verified {'yes' if r['verified'] else 'NO'}; {r['assigned']} assigned, "
                  f"{r['held_back']} held back")
    table.add_row("gap closed", f"{100 * facts['decision_quality']['gap_closed']:.1f}% of the "
                  "round-robin-to-oracle gap")
    fr = facts.get("frontier", {})
    if fr:
        table.add_row("price of fairness", ", ".join(
            f"α={a}: {v:.2f}%" if v is not None else f"α={a}: infeasible"
            for a, v in fr["yield_lost_pct"].items()))
    table.add_row("report", facts["files"]["report"])
    table.add_row("time", f"{facts['time_s']:.1f} s")
    return table


@handle_errors
def demo(
    out: Annotated[Path, typer.Option("--out", help="folder for everything the demo makes")] =
    Path("fairlead-demo"),
    partners: Annotated[int, typer.Option("--partners", min=2)] = 300,
    leads: Annotated[int, typer.Option("--leads", min=10)] = 20_000,
    history: Annotated[int, typer.Option("--history", min=200)] = 50_000,
    seed: Annotated[int, typer.Option("--seed")] = 7,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> None:
    """The whole pipeline on a synthetic channel, stored in the embedded SQLite database."""
    import tomllib

    from allocator.build import build_problem
    from allocator.frontier import compute_frontier
    from allocator.policy import DEFAULT_POLICY_TOML, policy_from_dict
    from models.simulate import simulate_channel, write_channel
    from models.train import train_model
    from service.cli.frontier_cmd import FRONTIER_CSV, FRONTIER_PNG
    from service.decision_quality import evaluate_decisions
    from service.pipeline import json_ready, run_round, write_round
    from service.report import build_report
    from service.report.plots import plot_frontier

    watch = _Stopwatch()
    out.mkdir(parents=True, exist_ok=True)
    out = out.resolve()
    policy = policy_from_dict(tomllib.loads(DEFAULT_POLICY_TOML))

    _say(f"simulating a channel: {partners} partners, {leads} leads, {history} history rows "
         f"(seed {seed})")
    channel = simulate_channel(partners, leads, history, seed)
    write_channel(channel, out / "channel")
    watch.lap("simulate")

    # a fresh store each run: the demo's round would otherwise find its leads already live
    # from the previous run (the registry is kept, so re-runs show model versions)
    db_file = out / "fairlead.db"
    db_file.unlink(missing_ok=True)
    db_url = f"sqlite:///{db_file}"
    _say(f"storing the channel in {db_url}")
    stored = _store_channel(db_url, channel, DEFAULT_POLICY_TOML)
    watch.lap("store")

    _say("training the conversion model (gradient boosting + logistic baseline)")
    trained = train_model(channel.history, channel.partners, model_dir=out / "models",
                          promote=True, progress=_say)
    watch.lap("train")

    _say("allocating the round with the model's scores")
    result = run_round(channel.partners, channel.leads, policy, scorer=trained.model,
                       progress=lambda stage: _say(f"round: {stage}"))
    round_dir = out / "round"
    write_round(result, round_dir)
    round_id = _store_round(db_url, result, DEFAULT_POLICY_TOML, trained.version)
    watch.lap("allocate")

    _say("judging the allocation by the true probabilities (model, oracle, baselines)")
    quality = evaluate_decisions(channel, policy, trained.model, model_round=result)
    (round_dir / "decision_quality.json").write_text(
        json.dumps(json_ready(quality.to_dict()), indent=2) + "\n")
    watch.lap("decision quality")

    _say("sweeping fairness against yield")
    problem = build_problem(result.scored.pairs, result.scored.values, result.scored.leads,
                            channel.partners, policy, effort=result.scored.effort)
    frontier = compute_frontier(problem, time_limit_s=policy.time_limit_s,
                                expected=result.scored.probability)
    table = frontier.to_frame()
    table.to_csv(round_dir / FRONTIER_CSV, index=False, float_format="%.10g")
    plot_frontier(table, round_dir / FRONTIER_PNG)
    watch.lap("frontier")

    report = build_report(round_dir)
    watch.lap("report")

    lost: dict[str, float | None] = {}
    for point in frontier.points:
        if point.label.startswith("alpha=") and round(point.alpha, 6) in (0.5, 1.0):
            pct = point.yield_lost_pct
            lost[f"{point.alpha:g}"] = None if pct != pct else float(pct)
    s = result.summary
    facts: dict[str, Any] = {
        "channel": {"partners": len(channel.partners), "leads": len(channel.leads),
                    "history": len(channel.history),
                    "history_conversion": float(channel.history["converted"].mean())},
        "stored": stored,
        "model": {"version": trained.version, "chosen": trained.chosen,
                  **{k: float(trained.metrics[k]) for k in ("auc", "log_loss", "brier", "ece")}},
        "round": {"round_id": round_id, "status": s["status"], "method": s["method"],
                  "objective": s["objective"], "bound": s["bound"], "gap": s["gap"] or 0.0,
                  "verified": s["verification"]["ok"], "assigned": s["counts"]["assigned"],
                  "held_back": s["counts"]["held_back"]},
        "decision_quality": quality.to_dict(),
        "frontier": {"yield_lost_pct": lost},
        "files": {"report": str(report), "round": str(round_dir), "database": db_url,
                  "models": str(out / "models"), "channel": str(out / "channel")},
        "timings_s": watch.stages,
        "time_s": watch.total_s,
    }
    (out / "demo_summary.json").write_text(json.dumps(json_ready(facts), indent=2) + "\n")
    if as_json:
        emit_json(json_ready(facts))
        return
    out_console.print(_summary_table(facts))
    out_console.print(_facts_table(facts))


def register(app: typer.Typer) -> None:
    """Add ``demo`` to ``app``."""
    app.command("demo")(demo)
