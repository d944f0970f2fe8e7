"""``fairlead demo`` end to end on a small channel: every artifact exists and agrees."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from service.cli.main import app


def test_demo_runs_the_whole_pipeline_and_stores_the_round(tmp_path):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--partners", "40", "--leads", "1500",
            "--history", "4000", "--seed", "3", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)

    assert facts["round"]["verified"] is True
    assert facts["round"]["status"] in ("optimal", "feasible")
    dq = facts["decision_quality"]
    assert dq["round_robin"] < dq["model"] <= dq["oracle"] + 1e-9
    for name in ("round", "report", "models", "channel"):
        assert Path(facts["files"][name]).exists(), name
    for name in ("assignments.csv", "summary.json", "frontier.csv", "frontier.png",
                 "report.html", "decision_quality.json"):
        assert (out / "round" / name).is_file(), name
    html = (out / "round" / "report.html").read_text()
    assert "data:image/png;base64," in html

    # the round is in the embedded database, with one audit entry per assignment at least
    with sqlite3.connect(out / "fairlead.db") as db:
        (n_assigned,) = db.execute("select count(*) from assignments where live").fetchone()
        (n_audit,) = db.execute("select count(*) from audit_log").fetchone()
    assert n_assigned == facts["round"]["assigned"]
    assert n_audit >= n_assigned

    # a second run starts from a fresh store and adds a model version
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["model"]["version"] == "v0002"
