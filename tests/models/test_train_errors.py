"""Bad histories give clear errors; targets, exclusions and previous versions work."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from allocator.errors import InputError
from models.registry import ModelRegistry
from models.train import train_model
from tests.models.model_support import toy_history


def test_missing_outcome_column_names_it_and_the_option():
    history, partners = toy_history(200)
    with pytest.raises(InputError, match=r"history, column 'converted': the outcome column "
                                         r"'converted' is missing \(columns: lead_id, .*\); "
                                         r"name the outcome with --target COL"):
        train_model(history.drop(columns=["converted"]), partners)


def test_a_single_outcome_class_is_refused():
    history, partners = toy_history(200)
    history["converted"] = 0
    with pytest.raises(InputError, match=r"only one class: all 200 rows are 0 \(not converted\)"):
        train_model(history, partners)


def test_target_with_other_values_lists_the_rows():
    history, partners = toy_history(200)
    history["won"] = np.where(history["converted"] == 1, "Yes", "no").astype(object)
    history.loc[[3, 7], "won"] = ["maybe", None]
    with pytest.raises(InputError) as err:
        train_model(history, partners, target="won")
    assert [(p.row, p.value) for p in err.value.problems] == [(4, "maybe"), (8, None)]
    assert "outcome 'won' must be yes/no, true/false or 1/0" in str(err.value)
    assert "(blank)" in err.value.problems[1].rule


@pytest.mark.parametrize("values", [("yes", "no"), ("TRUE", "false"), (1, 0), (True, False)])
def test_any_yes_no_target_column_trains(values):
    history, partners = toy_history(300)
    positive, negative = values
    history["won"] = pd.Series(np.where(history["converted"] == 1, positive, negative).tolist())
    result = train_model(history.drop(columns=["converted"]), partners, target="won")
    assert result.metadata["data"]["target"] == "won"
    assert result.metadata["data"]["conversions"] == int(toy_history(300)[0]["converted"].sum())
    assert "won" not in result.model.schema.features


def test_all_missing_feature_column_is_refused_with_a_fix():
    history, partners = toy_history(200)
    history["deal_size"] = np.nan
    partners["score_2023"] = np.nan
    with pytest.raises(InputError) as err:
        train_model(history, partners)
    text = str(err.value)
    assert "2 problems" in text
    assert ("history, column 'deal_size': every value is missing; a feature needs at least one "
            "value (drop the column with --exclude deal_size)") in text
    assert "partners, column 'score_2023': every value is missing" in text
    result = train_model(history, partners, exclude=["deal_size", "score_2023"])
    assert "deal_size_log" not in result.model.schema.features


def test_exclude_drops_leaky_columns_and_refuses_unknown_ones():
    history, partners = toy_history(300)
    history["closed_won_amount"] = history["converted"] * 1000.0  # leaks the outcome
    leaky = train_model(history, partners)
    assert leaky.metrics["auc"] > 0.99
    clean = train_model(history, partners, exclude=["closed_won_amount"])
    assert "lead.closed_won_amount" not in clean.model.schema.features
    assert clean.metrics["auc"] < 0.95
    assert clean.metadata["data"]["excluded"] == ["closed_won_amount"]
    with pytest.raises(InputError, match="'colsed_won': --exclude names a column that is in "
                                         "neither the history nor the partners"):
        train_model(history, partners, exclude=["colsed_won"])
    with pytest.raises(InputError, match="--exclude cannot drop the outcome column"):
        train_model(history, partners, exclude=["converted"])


def test_too_few_rows_and_blank_partner_ids():
    history, partners = toy_history(200)
    with pytest.raises(InputError, match=r"too few rows to train and evaluate: 30 rows"):
        train_model(history.iloc[:30], partners)
    history.loc[[5, 9], "partner_id"] = None
    with pytest.raises(InputError, match=r"row 6, column 'partner_id': blank: .*--exclude "
                                         r"partner_id for a lead-only model"):
        train_model(history, partners)


def test_without_timestamps_the_holdout_is_stratified():
    history, partners = toy_history(300)
    result = train_model(history.drop(columns=["assigned_at", "created_at"]), partners)
    assert result.metadata["data"]["split"].startswith("stratified random holdout")
    assert result.metadata["data"]["time_column"] is None


def test_second_run_is_compared_with_the_previous_version(tmp_path):
    history, partners = toy_history(400)
    first = train_model(history, partners, model_dir=tmp_path)
    assert first.version == "v0001" and first.promoted and first.previous is None
    second = train_model(history, partners, model_dir=tmp_path, exclude=["vertical"])
    assert second.version == "v0002" and not second.promoted
    prev = second.previous
    assert prev["version"] == "v0001" and prev["promoted"] and prev["same_data"]
    # v0001 saw the rows of this holdout: only the recorded figures can be shown
    assert prev["on_this_holdout"] is None
    assert prev["comparison"].startswith("recorded figures on different holdouts: the previous "
                                         "version was trained on data up to")
    assert prev["change"]["auc"] == pytest.approx(second.metrics["auc"] - first.metrics["auc"])
    assert ModelRegistry(tmp_path).metadata("v0002")["parent"] == "v0001"
    summary = second.summary()
    assert set(summary["metrics"]) == {"auc", "log_loss", "brier", "ece"}
    assert {summary["baseline"]["model"], summary["model"]} == {"gbm", "logistic"}
    assert set(summary["by_tier"]) == {"gold", "silver"}
    assert (tmp_path / "versions/v0002/reliability.png").stat().st_size > 10_000


def test_previous_version_is_scored_on_the_new_holdout_when_it_never_saw_it(tmp_path):
    history, partners = toy_history(1000)
    older = history.iloc[:700]  # v0001 ends before the last 20% of the full history starts
    first = train_model(older, partners, model_dir=tmp_path)
    second = train_model(history, partners, model_dir=tmp_path)
    prev = second.previous
    assert prev["comparison"].startswith("same rows: both versions scored this holdout")
    on_holdout = prev["on_this_holdout"]
    assert on_holdout is not None and on_holdout != prev["metrics"]
    assert prev["metrics"]["auc"] == first.metrics["auc"]
    for name in ("auc", "log_loss", "brier", "ece"):
        assert prev["change"][name] == pytest.approx(second.metrics[name] - on_holdout[name])
    # scoring v0001 on those rows by hand gives the same figures
    model = ModelRegistry(tmp_path).load("v0001")
    hold = history.sort_values("assigned_at").iloc[800:]
    X = model.features.transform_history(hold.drop(columns=["converted"]), partners)
    p = model.estimator.predict_positive(X)
    assert on_holdout["log_loss"] == pytest.approx(
        float(-np.mean(np.where(hold["converted"] == 1, np.log(p), np.log(1 - p)))))
