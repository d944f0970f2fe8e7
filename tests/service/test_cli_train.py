"""``fairlead train`` and ``fairlead models list|promote|rollback`` through the real Typer app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.cli.main import app
from tests.models.model_support import small_channel, write_csv

runner = CliRunner()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("history")
    channel = small_channel()
    history = channel.history.assign(
        won=channel.history["converted"].map({1: "yes", 0: "no"}),
        touches=(channel.history["qualification_score"].fillna(50) // 10),
    )
    return {
        "history": write_csv(history.drop(columns=["converted"]), root / "history.csv"),
        "partners": write_csv(channel.partners, root / "partners.csv"),
        "bad": write_csv(history.drop(columns=["converted", "won"]), root / "no_outcome.csv"),
    }


def _train(files: dict[str, Path], model_dir: Path, *extra: str):
    return runner.invoke(app, ["train", "--history", str(files["history"]), "--partners",
                               str(files["partners"]), "--target", "won", "--model-dir",
                               str(model_dir), *extra])


def test_train_json_then_list_promote_rollback(files, tmp_path):
    reg = tmp_path / "models"
    first = _train(files, reg, "--json")
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert summary["version"] == "v0001" and summary["promoted"] is True
    assert set(summary["metrics"]) == {"auc", "log_loss", "brier", "ece"}
    assert all(0 <= summary["metrics"][k] <= 1 for k in ("auc", "brier", "ece"))
    assert summary["baseline"]["model"] in ("gbm", "logistic")
    assert summary["previous"] is None and summary["by_tier"]
    assert "fitting gbm" in first.stderr

    second = _train(files, reg, "--json", "--exclude", "touches,country")
    assert second.exit_code == 0, second.output
    again = json.loads(second.stdout)
    assert again["version"] == "v0002" and again["promoted"] is False
    assert again["previous"]["version"] == "v0001" and again["previous"]["same_data"] is True

    listed = runner.invoke(app, ["models", "list", "--model-dir", str(reg), "--json"])
    assert listed.exit_code == 0, listed.output
    data = json.loads(listed.stdout)
    assert data["promoted"] == "v0001"
    assert [v["version"] for v in data["versions"]] == ["v0001", "v0002"]
    assert data["versions"][1]["parent"] == "v0001"

    promoted = runner.invoke(app, ["models", "promote", "v0002", "--model-dir", str(reg)])
    assert promoted.exit_code == 0 and "promoted v0002 (was v0001)" in promoted.stdout
    back = runner.invoke(app, ["models", "rollback", "--model-dir", str(reg), "--json"])
    assert back.exit_code == 0
    assert json.loads(back.stdout) == {"promoted": "v0001", "previous": "v0002"}
    table = runner.invoke(app, ["models", "list", "--model-dir", str(reg)])
    assert table.exit_code == 0 and "v0002" in table.stdout


def test_train_prints_a_table_without_json(files, tmp_path):
    result = _train(files, tmp_path / "m")
    assert result.exit_code == 0, result.output
    assert "held-out figures" in result.stdout and "by tier" in result.stdout
    assert "saved v0001" in result.stdout


def test_bad_input_exits_2_with_the_reason(files, tmp_path):
    no_outcome = runner.invoke(app, ["train", "--history", str(files["bad"]), "--target", "won",
                                     "--model-dir", str(tmp_path)])
    assert no_outcome.exit_code == 2
    assert "outcome column 'won' is missing" in no_outcome.stderr
    missing = runner.invoke(app, ["train", "--history", str(tmp_path / "nope.csv"),
                                  "--model-dir", str(tmp_path)])
    assert missing.exit_code == 2 and "no such file" in missing.stderr
    unknown = runner.invoke(app, ["models", "promote", "v0042", "--model-dir", str(tmp_path)])
    assert unknown.exit_code == 2 and "no such model version" in unknown.stderr
    nothing = runner.invoke(app, ["models", "rollback", "--model-dir", str(tmp_path)])
    assert nothing.exit_code == 2 and "nothing to roll back to" in nothing.stderr
