"""`fairlead frontier`: the table and the picture from files, and its bad-input answers."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from models.simulate import simulate_channel, write_channel
from service.cli.frontier_cmd import parse_alphas
from service.cli.main import app

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
POLICY = """\
[fairness]
partner_floor = 1
[capacity]
max_share_per_partner = 0.9
[tiers.gold]
max_share = 0.9
"""


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _pairs_round(tmp_path):
    partners = pd.DataFrame({"partner_id": ["P1", "P2", "P3"], "name": ["a", "b", "c"],
                             "tier": ["gold", "gold", "silver"], "regions": ["EU"] * 3,
                             "capacity": [6, 6, 6]})
    rows = [(f"L{i}", p, s) for i in range(8)
            for p, s in (("P1", 0.6), ("P2", 0.3 + 0.01 * i), ("P3", 0.05))]
    pairs = pd.DataFrame(rows, columns=["lead_id", "partner_id", "score"])
    partners.to_csv(tmp_path / "partners.csv", index=False)
    pairs.to_csv(tmp_path / "pairs.csv", index=False)
    (tmp_path / "policy.toml").write_text(POLICY)
    return tmp_path


def test_frontier_from_pairs_writes_table_and_picture(tmp_path, runner):
    d = _pairs_round(tmp_path)
    out = d / "round"
    res = runner.invoke(app, ["frontier", "--partners", str(d / "partners.csv"),
                              "--pairs", str(d / "pairs.csv"), "--policy", str(d / "policy.toml"),
                              "--out", str(out), "--points", "5", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["unit"] == "score"
    table = pd.read_csv(out / "frontier.csv")
    assert (out / "frontier.png").read_bytes()[:8] == PNG_MAGIC
    sweep = table[~table["is_current"]]
    assert sweep["alpha"].tolist() == pytest.approx([0, 0.25, 0.5, 0.75, 1.0])
    assert (sweep["status"] == "optimal").all() and sweep["verified"].all()
    # 8 leads, P1 best, P3 worst: each step of fairness moves leads towards P3.
    obj = sweep["objective"].to_numpy()
    assert (np.diff(obj) <= 1e-9).all() and obj[-1] < obj[0]
    assert sweep["floor_total"].is_monotonic_increasing
    assert table["is_current"].sum() == 1
    assert len(data["points"]) == len(table)
    for col in ("yield_lost", "jain_leads", "worst_off_share", "tier_share[gold]"):
        assert col in table.columns


def test_frontier_from_leads_with_the_heuristic_prior(tmp_path, runner):
    channel = simulate_channel(n_partners=10, n_leads=120, n_history=0, seed=4)
    # Unit effort and no quota keep every point an exact flow.
    write_channel(replace(channel, leads=channel.leads.assign(effort=1.0)), tmp_path)
    (tmp_path / "policy.toml").write_text(POLICY + "[qualification]\nmin_score = 40\n")
    res = runner.invoke(app, ["frontier", "--partners", str(tmp_path / "partners.csv"),
                              "--leads", str(tmp_path / "leads.csv"),
                              "--policy", str(tmp_path / "policy.toml"),
                              "--out", str(tmp_path / "f"), "--alphas", "0,0.5,1",
                              "--time-limit", "10"])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(tmp_path / "f" / "frontier.csv")
    assert table["label"].tolist() == ["alpha=0", "alpha=0.5", "alpha=1", "current policy"]
    assert "fairness against yield" in res.stdout


def test_bad_input_exits_2_with_the_reason(tmp_path, runner):
    d = _pairs_round(tmp_path)
    base = ["frontier", "--partners", str(d / "partners.csv"), "--policy",
            str(d / "policy.toml"), "--out", str(d / "o")]
    res = runner.invoke(app, base)
    assert res.exit_code == 2 and "give --leads" in res.output
    res = runner.invoke(app, [*base, "--pairs", str(d / "pairs.csv"), "--alphas", "0,1.5,x"])
    assert res.exit_code == 2
    assert "'1.5'" in res.output and "'x'" in res.output
    res = runner.invoke(app, [*base, "--pairs", str(d / "missing.csv")])
    assert res.exit_code == 2 and "missing.csv" in res.output
    assert not (d / "o").exists()


def test_parse_alphas():
    assert parse_alphas(None, 3) == [0.0, 0.5, 1.0]
    assert parse_alphas("0, 0.3,1", 11) == [0.0, 0.3, 1.0]
    assert len(parse_alphas(None, 11)) == 11
