"""``fairlead allocate`` and ``fairlead solve`` through the real Typer app."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from allocator.policy import DEFAULT_POLICY_TOML
from models.simulate import simulate_channel
from service.cli.main import app

runner = CliRunner()


def _csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write a data-contract frame as the CSV a user would: lists `;`-joined, ISO times."""
    out = frame.copy()
    for col in out.columns:
        if out[col].map(lambda v: isinstance(v, tuple)).any():
            out[col] = out[col].map(lambda v: ";".join(v) if isinstance(v, tuple) else v)
    out.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("channel")
    ch = simulate_channel(n_partners=12, n_leads=200, n_history=20, seed=5)
    policy = root / "policy.toml"
    policy.write_text(DEFAULT_POLICY_TOML)
    return {
        "partners": _csv(ch.partners, root / "partners.csv"),
        "leads": _csv(ch.leads.drop(columns=["effort"]), root / "leads.csv"),
        "policy": policy,
    }


def _allocate_args(files: dict[str, Path], out: Path) -> list[str]:
    return ["allocate", "--partners", str(files["partners"]), "--leads", str(files["leads"]),
            "--policy", str(files["policy"]), "--out", str(out)]


def test_allocate_writes_the_round_and_prints_the_comparison(files, tmp_path):
    out = tmp_path / "round"
    result = runner.invoke(app, _allocate_args(files, out))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["assignments.csv", "summary.json"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "optimal"
    assert summary["scores_source"] == "scores: heuristic prior (no model given)"
    assignments = pd.read_csv(out / "assignments.csv", keep_default_na=False)
    assert list(assignments.columns[:5]) == ["lead_id", "partner_id", "score", "rank", "reason"]
    assert len(assignments) == 200
    assert "optimizer" in result.stdout and "tier-weighted RR" in result.stdout
    assert "eligibility" in result.stderr and "wrote" in result.stderr


def test_allocate_json_prints_only_the_summary_on_stdout(files, tmp_path):
    out = tmp_path / "round"
    result = runner.invoke(app, [*_allocate_args(files, out), "--json", "--time-limit", "5"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary == json.loads((out / "summary.json").read_text())
    assert set(summary["baselines"]) == {"round_robin", "tier_weighted_round_robin", "greedy",
                                         "rule_cascade"}


def test_bad_input_in_several_files_is_reported_at_once_and_nothing_is_written(files, tmp_path):
    partners = pd.read_csv(files["partners"])
    partners.loc[0, "capacity"] = -3
    bad_partners = _csv(partners, tmp_path / "partners.csv")
    bad_policy = tmp_path / "policy.toml"
    bad_policy.write_text(DEFAULT_POLICY_TOML.replace("partner_floor", "partner_flor"))
    out = tmp_path / "round"
    result = runner.invoke(app, ["allocate", "--partners", str(bad_partners), "--leads",
                                 str(files["leads"]), "--policy", str(bad_policy),
                                 "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "partner_flor" in result.stderr and "did you mean 'partner_floor'" in result.stderr
    assert "capacity" in result.stderr and "-3" in result.stderr
    assert not out.exists()


def test_an_infeasible_policy_exits_2_with_the_reason_and_writes_nothing(files, tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text(DEFAULT_POLICY_TOML.replace("assign_all = false", "assign_all = true"))
    out = tmp_path / "round"
    result = runner.invoke(app, ["allocate", "--partners", str(files["partners"]), "--leads",
                                 str(files["leads"]), "--policy", str(policy), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "infeasible policy" in result.stderr
    assert not out.exists()


def test_a_missing_file_or_model_folder_exits_2(files, tmp_path):
    out = tmp_path / "round"
    args = _allocate_args(files, out)
    args[2] = str(tmp_path / "nope.csv")
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "nope.csv" in result.stderr
    result = runner.invoke(app, [*_allocate_args(files, out), "--model", str(tmp_path / "none")])
    assert result.exit_code == 2 and "the model folder does not exist" in result.stderr
    assert not out.exists()


def _pairs_file(tmp_path: Path, rows: list[tuple[str, str, str]]) -> Path:
    path = tmp_path / "pairs.csv"
    path.write_text("lead_id,partner_id,score\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows))
    return path


def test_solve_on_scores_you_bring(files, tmp_path):
    partners = pd.read_csv(files["partners"])
    p0, p1 = partners["partner_id"].iloc[:2]
    pairs = _pairs_file(tmp_path, [("L1", p0, "3.5"), ("L1", p1, "-1"), ("L2", p1, "2")])
    policy = tmp_path / "policy.toml"
    policy.write_text("[objective]\nvalue = \"conversions\"\n")
    out = tmp_path / "round"
    result = runner.invoke(app, ["solve", "--pairs", str(pairs), "--partners",
                                 str(files["partners"]), "--policy", str(policy),
                                 "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["objective"] == pytest.approx(5.5)
    assert summary["scores_source"] == "scores: pairs file (values as given)"
    rows = pd.read_csv(out / "assignments.csv", keep_default_na=False).set_index("lead_id")
    assert rows.loc["L1", "partner_id"] == p0 and rows.loc["L2", "partner_id"] == p1


def test_solve_rejects_bad_scores_duplicates_and_unknown_ids(files, tmp_path):
    partners = pd.read_csv(files["partners"])
    p0 = partners["partner_id"].iloc[0]
    pairs = _pairs_file(tmp_path, [("L1", p0, "nan"), ("L1", p0, "0.2"), ("L2", "NOPE", "inf")])
    out = tmp_path / "round"
    result = runner.invoke(app, ["solve", "--pairs", str(pairs), "--partners",
                                 str(files["partners"]), "--policy", str(files["policy"]),
                                 "--out", str(out)])
    assert result.exit_code == 2, result.output
    text = result.stderr
    assert "row 1" in text and "row 3" in text and "'score'" in text
    assert "duplicate" in text and "NOPE" in text
    assert not out.exists()


def test_allocate_scores_with_the_promoted_model_of_a_registry(files, tmp_path):
    from models.train import train_model

    history = simulate_channel(n_partners=12, n_leads=10, n_history=600, seed=5)
    registry = tmp_path / "models"
    train_model(history.history, history.partners, model_dir=registry)
    out = tmp_path / "round"
    result = runner.invoke(app, [*_allocate_args(files, out), "--model", str(registry), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["scores_source"] == "scores: model version v0001"
    assert summary["expected_conversions"] == pytest.approx(summary["objective"])

    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, [*_allocate_args(files, tmp_path / "other"), "--model",
                                 str(empty)])
    assert result.exit_code == 2 and "no model version is promoted" in result.stderr
    assert not (tmp_path / "other").exists()
