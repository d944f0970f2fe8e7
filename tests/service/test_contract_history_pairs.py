"""history and pairs: outcome, ids, scores and effort, from CSV and Parquet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from allocator.errors import InputError
from service.contract import load_history, load_pairs, validate_history, validate_pairs
from tests.service.contract_support import FORMATS, line, problems_of, write_table

OUTCOME_RULE = "outcome 'converted' must be yes/no, true/false or 1/0"
FINITE_RULE = "'score' must be a finite number (not NaN or infinity)"


def history_columns(**changes: list[Any]) -> dict[str, list[Any]]:
    cols: dict[str, list[Any]] = {
        "lead_id": ["L1", "L1", "L2", "L3"],
        "created_at": ["2024-01-01", "2024-01-01", "2024-01-02T08:00:00Z", None],
        "region": ["EMEA", "EMEA", "NA", "APAC"],
        "intent": ["high", "high", None, "low"],
        "deal_size": ["100", "100", None, "5"],
        "partner_id": ["P1", "P2", "P1", None],
        "assigned_at": ["2024-01-02", "2024-01-04", "2024-01-03T10:00:00+01:00", None],
        "converted": ["yes", "No", "TRUE", "0"],
        "channel_touches": ["3", "1", "0", "7"],
    }
    cols.update(changes)
    return cols


def pair_columns(**changes: list[Any]) -> dict[str, list[Any]]:
    cols: dict[str, list[Any]] = {
        "lead_id": ["L1", "L1", "L2"],
        "partner_id": ["P1", "P2", "P1"],
        "score": ["0.25", "-1.5", "3"],
    }
    cols.update(changes)
    return cols


# -- history ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_valid_history_is_typed(tmp_path: Path, fmt: str) -> None:
    out = load_history(write_table(tmp_path, "history", history_columns(), fmt))
    assert out["converted"].dtype == np.int64 and out["converted"].tolist() == [1, 0, 1, 0]
    assert out["lead_id"].tolist() == ["L1", "L1", "L2", "L3"]  # repeats allowed (re-routing)
    assert str(out["assigned_at"].dtype) == "datetime64[ns, UTC]"
    assert out["assigned_at"].iat[2] == pd.Timestamp("2024-01-03 09:00", tz="UTC")
    assert out["assigned_at"].isna().iat[3] and out["partner_id"].isna().iat[3]
    assert out["deal_size"].dtype == np.float64
    assert "channel_touches" in out.columns  # candidate feature kept
    assert len(out) == 4


def test_history_extras_are_kept_as_read(tmp_path: Path) -> None:
    out = load_history(write_table(tmp_path, "history", history_columns(), "csv"))
    assert out["channel_touches"].tolist() == [3, 1, 0, 7]


def test_history_without_partner_id_or_lead_columns_is_valid(tmp_path: Path) -> None:
    cols = {"region": ["NA", "EU"], "converted": ["1", "0"]}
    out = load_history(write_table(tmp_path, "history", cols, "csv"))
    assert "partner_id" not in out.columns and "effort" not in out.columns
    assert out["converted"].tolist() == [1, 0]


@pytest.mark.parametrize("fmt", FORMATS)
def test_another_outcome_column_is_named_by_target(tmp_path: Path, fmt: str) -> None:
    cols = history_columns()
    cols["won"] = cols.pop("converted")
    out = load_history(write_table(tmp_path, "history", cols, fmt), target="won")
    assert out["won"].tolist() == [1, 0, 1, 0] and out["won"].dtype == np.int64


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_outcome_column(tmp_path: Path, fmt: str) -> None:
    cols = history_columns()
    cols["Won"] = cols.pop("converted")
    path = write_table(tmp_path, "history", cols, fmt)
    with pytest.raises(InputError, match=line(None, "converted", None,
                                              "outcome column 'converted' is missing")):
        load_history(path)
    with pytest.raises(InputError, match=line(None, "won", None, "outcome column 'won' is missing "
                                              "(did you mean 'Won'?)")):
        load_history(path, target="won")


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_bad_outcome_is_reported(tmp_path: Path, fmt: str) -> None:
    path = write_table(tmp_path, "history",
                       history_columns(converted=["maybe", "2", None, "Yes"]), fmt)
    with pytest.raises(InputError, match=line(1, "converted", "maybe", OUTCOME_RULE)) as ei:
        load_history(path)
    assert [(p.row, p.value, p.rule) for p in problems_of(ei)] == [
        (3, None, "'converted' is required but the cell is blank"),
        (1, "maybe", OUTCOME_RULE),
        (2, "2", OUTCOME_RULE),
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_history_lead_columns_follow_the_lead_rules(tmp_path: Path, fmt: str) -> None:
    path = write_table(tmp_path, "history", history_columns(
        intent=["high", "hot", None, "low"], assigned_at=["2024-01-02", "later", None, None]
    ), fmt)
    with pytest.raises(InputError) as ei:
        load_history(path)
    assert [(p.row, p.column) for p in problems_of(ei)] == [(2, "intent"), (2, "assigned_at")]


def test_history_outcome_from_typed_columns() -> None:
    frame = pd.DataFrame({"region": ["NA", "EU", "NA"], "converted": [True, False, True]})
    assert validate_history(frame)["converted"].tolist() == [1, 0, 1]
    frame = pd.DataFrame({"region": ["NA", "EU"], "converted": [1.0, 3.0]})
    with pytest.raises(InputError, match=line(2, "converted", 3.0, OUTCOME_RULE)):
        validate_history(frame)


# -- pairs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_valid_pairs_are_typed(tmp_path: Path, fmt: str) -> None:
    out = load_pairs(write_table(tmp_path, "pairs", pair_columns(), fmt))
    assert out["score"].dtype == np.float64 and out["score"].tolist() == [0.25, -1.5, 3.0]
    assert "effort" not in out.columns  # the lead's own effort then applies


@pytest.mark.parametrize("fmt", FORMATS)
def test_pair_effort_defaults_to_one_and_must_be_positive(tmp_path: Path, fmt: str) -> None:
    out = load_pairs(write_table(tmp_path, "pairs", pair_columns(effort=["2", None, "0.5"]), fmt))
    assert out["effort"].tolist() == [2.0, 1.0, 0.5]
    path = write_table(tmp_path, "bad", pair_columns(effort=["0", "-2", "x"]), fmt)
    with pytest.raises(InputError, match=line(1, "effort", "0", "'effort' must be > 0")) as ei:
        load_pairs(path)
    assert [(p.row, p.rule) for p in problems_of(ei)] == [
        (3, "'effort' must be a number"), (1, "'effort' must be > 0"), (2, "'effort' must be > 0"),
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_scores_must_be_finite_numbers(tmp_path: Path, fmt: str) -> None:
    path = write_table(tmp_path, "pairs", pair_columns(
        lead_id=["L1", "L2", "L3", "L4", "L5"], partner_id=["P1"] * 5,
        score=["inf", "NaN", "-Infinity", "high", None],
    ), fmt)
    with pytest.raises(InputError, match=line(1, "score", "inf", FINITE_RULE)) as ei:
        load_pairs(path)
    assert [(p.row, p.value, p.rule) for p in problems_of(ei)] == [
        (5, None, "'score' is required but the cell is blank"),
        (4, "high", "'score' must be a number"),
        (1, "inf", FINITE_RULE),
        (2, "NaN", FINITE_RULE),
        (3, "-Infinity", FINITE_RULE),
    ]


def test_nan_in_a_float_score_column_is_rejected(tmp_path: Path) -> None:
    frame = pd.DataFrame({"lead_id": ["L1", "L2", "L3"], "partner_id": ["P1", "P1", "P1"],
                          "score": [0.5, np.nan, np.inf]})
    path = tmp_path / "pairs.parquet"
    frame.to_parquet(path)
    with pytest.raises(InputError) as ei:
        load_pairs(path)
    assert [(p.row, p.rule) for p in problems_of(ei)] == [
        (2, "'score' is required but the cell is blank (or NaN)"),
        (3, FINITE_RULE),
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_duplicate_pairs_name_the_row_they_repeat(tmp_path: Path, fmt: str) -> None:
    path = write_table(tmp_path, "pairs", pair_columns(
        lead_id=["L1", "L1", "L1", "L2"], partner_id=["P1", "P2", "P1", "P1"],
        score=["1", "2", "3", "4"],
    ), fmt)
    rule = "duplicate pair lead_id 'L1', partner_id 'P1': first seen in row 1"
    with pytest.raises(InputError, match=line(3, "lead_id,partner_id", ["L1", "P1"], rule)) as ei:
        load_pairs(path)
    assert len(problems_of(ei)) == 1


@pytest.mark.parametrize("fmt", FORMATS)
def test_ids_must_exist_when_partners_and_leads_are_given(tmp_path: Path, fmt: str) -> None:
    partners = pd.DataFrame({"partner_id": ["P1", "P2"]})
    leads = pd.DataFrame({"lead_id": ["L1", "L2"]})
    path = write_table(tmp_path, "pairs", pair_columns(
        lead_id=["L1", "L9", "L8"], partner_id=["P3", "P1", "P2"]
    ), fmt)
    assert len(load_pairs(path)) == 3  # without the tables, ids are not checked
    with pytest.raises(InputError, match=line(2, "lead_id", "L9", "lead_id 'L9' is not in leads")) \
            as ei:
        load_pairs(path, partners=partners, leads=leads)
    assert [(p.row, p.column, p.rule) for p in problems_of(ei)] == [
        (2, "lead_id", "lead_id 'L9' is not in leads"),
        (3, "lead_id", "lead_id 'L8' is not in leads"),
        (1, "partner_id", "partner_id 'P3' is not in partners"),
    ]


def test_pairs_missing_columns_and_blank_ids_all_reported() -> None:
    frame = pd.DataFrame({"lead_id": ["L1", None], "partner": ["P1", "P2"]})
    with pytest.raises(InputError) as ei:
        validate_pairs(frame, file="pairs upload")
    assert [(p.file, p.row, p.column, p.rule) for p in problems_of(ei)] == [
        ("pairs upload", 2, "lead_id", "'lead_id' is required but the cell is blank"),
        ("pairs upload", None, "partner_id",
         "required column 'partner_id' is missing (did you mean 'partner'?)"),
        ("pairs upload", None, "score", "required column 'score' is missing"),
    ]
