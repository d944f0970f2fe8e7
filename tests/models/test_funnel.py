"""The funnel stage column: an outcome with its problems named, used to fit partner skill."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from allocator.errors import InputError
from models.funnel import STAGES, stage_levels
from models.train import train_model
from tests.models.model_support import toy_history


def _with_stages(history: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    lost = rng.choice(STAGES[:-1], size=len(history))
    return history.assign(stage=np.where(history["converted"] == 1, "won", lost))


def test_stages_become_levels_blank_allowed_any_case():
    history = pd.DataFrame({"stage": ["Won", " qualified", None, "", "accepted"],
                            "converted": [1, 0, 1, 0, 0]})
    levels = stage_levels(history, history["converted"].to_numpy())
    np.testing.assert_array_equal(levels, [4, 2, -1, -1, 0])
    assert stage_levels(history.drop(columns=["stage"]), np.zeros(5)) is None
    assert stage_levels(history.assign(stage=None), np.zeros(5)) is None


def test_bad_stages_are_named_with_row_value_and_rule():
    history = pd.DataFrame({"stage": ["won", "negotiating", "won", "contacted", "qualified"],
                            "converted": [1, 0, 0, 1, 0]})
    with pytest.raises(InputError) as err:
        stage_levels(history, history["converted"].to_numpy())
    got = [(p.row, p.column, p.value) for p in err.value.problems]
    assert got == [(2, "stage", "negotiating"), (3, "stage", "won"), (4, "stage", "contacted")]
    text = str(err.value)
    assert ("stage must be one of accepted, contacted, qualified, opportunity, won (or blank)"
            in text)
    assert "stage 'won' on a row whose outcome is 0" in text
    assert "a converted lead's stage is 'won'" in text


def test_training_reads_the_stage_as_an_outcome_never_a_feature():
    history, partners = toy_history(400)
    staged = _with_stages(history)
    result = train_model(staged, partners)
    schema = result.model.schema
    assert not any("stage" in f for f in schema.features)
    reasons = {d.name: d.reason for d in schema.dropped}
    assert reasons["stage"].startswith("funnel stage: an outcome")
    funnel = result.metadata["data"]["funnel"]
    assert sum(funnel.values()) == len(history)
    assert funnel["won"] == int(history["converted"].sum()) and funnel["blank"] == 0
    # the effects rest on the stages: other stages with the same outcomes, other effects
    plain = train_model(history, partners)
    assert plain.metadata["data"]["funnel"] is None
    assert not np.allclose(result.model.features.effect_table_.cell_effect,
                           plain.model.features.effect_table_.cell_effect)
    # --exclude stage trains on conversions alone: the same effects as without the column
    excluded = train_model(staged, partners, exclude=["stage"])
    assert excluded.metadata["data"]["funnel"] is None
    np.testing.assert_allclose(excluded.model.features.effect_table_.cell_effect,
                               plain.model.features.effect_table_.cell_effect)


def test_a_stage_that_contradicts_the_outcome_stops_training():
    history, partners = toy_history(200)
    staged = _with_stages(history)
    row = int(np.flatnonzero(history["converted"].to_numpy() == 0)[0])
    staged.loc[row, "stage"] = "won"
    with pytest.raises(InputError, match=rf"history, row {row + 1}, column 'stage'"):
        train_model(staged, partners)


def test_a_lead_only_history_keeps_the_stage_out_of_its_features():
    history, _ = toy_history(300)
    staged = _with_stages(history).drop(columns=["partner_id"])
    result = train_model(staged)
    assert not any("stage" in f for f in result.model.schema.features)
    reasons = {d.name: d.reason for d in result.model.schema.dropped}
    assert "unused" in reasons["stage"]
    assert result.summary()["funnel"]["won"] == int(history["converted"].sum())
