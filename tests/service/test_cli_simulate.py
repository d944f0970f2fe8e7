"""``fairlead simulate`` through the real Typer app; its files read back by the contract loaders."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from models.simulate import simulate_channel, write_channel
from service.cli.main import app
from service.contract import load_history, load_leads, load_partners, load_policy, read_table

runner = CliRunner()
ARGS = ["simulate", "--partners", "30", "--leads", "400", "--history", "600", "--seed", "3"]


def test_writes_a_ready_round_and_reports_it_as_json(tmp_path):
    out = tmp_path / "round"
    result = runner.invoke(app, [*ARGS, "--out", str(out), "--truth", "--json"])
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)
    assert facts["partners"] == 30 and facts["leads"] == 400 and facts["history"] == 600
    assert facts["seed"] == 3 and facts["out"] == str(out)
    assert sum(facts["tier_shares"].values()) == pytest.approx(1.0)
    assert 0.0 < facts["history_conversion_rate"] < 0.3
    assert set(facts["files"]) == {"partners", "leads", "history", "truth", "policy"}
    assert sorted(p.name for p in out.iterdir()) == [
        "history.csv", "leads.csv", "partners.csv", "policy.toml", "truth.csv"]
    # the same channel as the library draws, read back exactly by the contract loaders
    channel = simulate_channel(30, 400, 600, seed=3, with_truth=True)
    policy = load_policy(out / "policy.toml")
    pd.testing.assert_frame_equal(load_partners(out / "partners.csv", policy), channel.partners)
    pd.testing.assert_frame_equal(load_leads(out / "leads.csv"), channel.leads)
    pd.testing.assert_frame_equal(load_history(out / "history.csv"), channel.history)
    truth = read_table(out / "truth.csv").frame
    assert channel.truth is not None
    assert truth["lead_id"].tolist() == channel.truth["lead_id"].tolist()
    np.testing.assert_allclose(truth["p_true"].to_numpy(dtype=float), channel.truth["p_true"],
                               rtol=1e-15)
    assert facts["eligible_pairs"] == len(channel.truth)


def test_prints_a_table_without_json_and_skips_truth_by_default(tmp_path):
    result = runner.invoke(app, [*ARGS, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "conversion rate" in result.stdout and "tier shares" in result.stdout
    assert "wrote partners.csv, leads.csv, history.csv, policy.toml" in result.stdout
    assert not (tmp_path / "truth.csv").exists()


def test_files_use_the_contract_conventions(tmp_path):
    channel = simulate_channel(8, 30, 0, seed=1)
    files = write_channel(channel, tmp_path)
    assert "history" not in files  # no rows, no file
    partners = (tmp_path / "partners.csv").read_text().splitlines()
    assert partners[0].replace('"', "").split(",")[:4] == ["partner_id", "name", "tier", "regions"]
    first = channel.partners.iloc[0]
    assert f'"{";".join(first["regions"])}"' in partners[1]
    assert partners[1].endswith(",true") or partners[1].endswith(",false")
    leads = (tmp_path / "leads.csv").read_text()
    created = channel.leads["created_at"].iloc[0].strftime("%Y-%m-%dT%H:%M:%SZ")
    assert f'"{created}"' in leads


@pytest.mark.parametrize(("option", "value"), [("--partners", "0"), ("--leads", "-5"),
                                               ("--history", "x")])
def test_bad_sizes_exit_2(tmp_path, option, value):
    result = runner.invoke(app, ["simulate", option, value, "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert option in result.output
    assert not any(tmp_path.iterdir())


def test_help():
    result = runner.invoke(app, ["simulate", "--help"])
    assert result.exit_code == 0
    assert "--truth" in result.stdout and "--seed" in result.stdout
