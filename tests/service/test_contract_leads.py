"""leads: every rule of the input contract, from CSV and Parquet, all problems at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from allocator.errors import InputError
from service.contract import load_leads, validate_leads
from tests.service.contract_support import FORMATS, line, problems_of, write_table

ISO_RULE = "must be an ISO-8601 timestamp such as 2024-05-01 or 2024-05-01T09:30:00Z"


def lead_columns(**changes: list[Any]) -> dict[str, list[Any]]:
    cols: dict[str, list[Any]] = {
        "lead_id": ["L1", "L2", "L3"],
        "created_at": ["2024-05-01T09:30:00Z", "2024-05-01 11:30:00+02:00", "2024-05-02"],
        "region": ["EMEA", "NA", "APAC"],
        "country": ["DE", None, "JP"],
        "vertical": ["finance", None, "retail"],
        "product": ["core", "cloud", None],
        "company_size": ["250", None, "12"],
        "deal_size": ["12000.5", None, "0"],
        "intent": ["high", None, "low"],
        "qualification_score": ["80", "0", None],
        "account_owner_partner_id": [None, "P7", None],
        "effort": ["2", None, "0.5"],
        "contact_email": ["a@x.com", None, "c@y.org"],
        "source": ["web", "event", "web"],
    }
    cols.update(changes)
    return cols


def load(tmp_path: Path, fmt: str, **changes: list[Any]) -> pd.DataFrame:
    return load_leads(write_table(tmp_path, "leads", lead_columns(**changes), fmt))


def load_error(tmp_path: Path, fmt: str, match: str, **changes: list[Any]):
    with pytest.raises(InputError, match=match) as excinfo:
        load(tmp_path, fmt, **changes)
    return problems_of(excinfo)


def rows_rules(problems) -> list[tuple[int | None, str | None, str]]:
    return [(p.row, p.column, p.rule) for p in problems]


@pytest.mark.parametrize("fmt", FORMATS)
def test_valid_leads_are_typed_per_the_contract(tmp_path: Path, fmt: str) -> None:
    out = load(tmp_path, fmt)
    assert str(out["created_at"].dtype) == "datetime64[ns, UTC]"
    assert out["created_at"].tolist() == [
        pd.Timestamp("2024-05-01 09:30", tz="UTC"),
        pd.Timestamp("2024-05-01 09:30", tz="UTC"),
        pd.Timestamp("2024-05-02", tz="UTC"),
    ]
    assert out["lead_id"].dtype == "str" and out["region"].tolist() == ["EMEA", "NA", "APAC"]
    assert out["company_size"].dtype == "Int64"
    assert out["company_size"].tolist()[::2] == [250, 12] and out["company_size"].isna().iat[1]
    assert out["deal_size"].dtype == np.float64 and out["deal_size"].isna().iat[1]
    assert out["qualification_score"].tolist()[:2] == [80.0, 0.0]
    assert out["effort"].dtype == np.float64 and out["effort"].tolist() == [2.0, 1.0, 0.5]
    assert out["intent"].isna().tolist() == [False, True, False]
    assert out["country"].isna().iat[1] and out["account_owner_partner_id"].isna().iat[0]
    assert out["source"].tolist() == ["web", "event", "web"]
    assert len(out) == 3


def test_absent_effort_is_added_as_one_and_other_optionals_are_not_invented(
    tmp_path: Path,
) -> None:
    cols = {k: v for k, v in lead_columns().items()
            if k in ("lead_id", "created_at", "region")}
    out = load_leads(write_table(tmp_path, "leads", cols, "csv"))
    assert out["effort"].tolist() == [1.0, 1.0, 1.0]
    assert set(out.columns) == {"lead_id", "created_at", "region", "effort"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_all_missing_required_columns_are_reported(tmp_path: Path, fmt: str) -> None:
    cols = {k: v for k, v in lead_columns().items()
            if k not in ("lead_id", "created_at", "region")}
    with pytest.raises(InputError, match="required column 'created_at' is missing") as ei:
        load_leads(write_table(tmp_path, "leads", cols, fmt))
    assert rows_rules(problems_of(ei)) == [
        (None, "lead_id", "required column 'lead_id' is missing"),
        (None, "created_at", "required column 'created_at' is missing"),
        (None, "region", "required column 'region' is missing"),
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_blank_required_cells(tmp_path: Path, fmt: str) -> None:
    problems = load_error(tmp_path, fmt, "'created_at' is required but the cell is blank",
                          lead_id=["L1", None, "L3"], created_at=["2024-05-01", "2024-05-01", " "],
                          region=[None, "NA", "EU"])
    assert rows_rules(problems) == [
        (2, "lead_id", "'lead_id' is required but the cell is blank"),
        (3, "created_at", "'created_at' is required but the cell is blank"),
        (1, "region", "'region' is required but the cell is blank"),
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_duplicate_lead_ids(tmp_path: Path, fmt: str) -> None:
    problems = load_error(tmp_path, fmt, line(3, "lead_id", "L1",
                                              "duplicate lead_id 'L1': first seen in row 1"),
                          lead_id=["L1", "L2", "L1"])
    assert len(problems) == 1


@pytest.mark.parametrize(
    "bad", ["2024/05/01", "yesterday", "2024-02-30", "01/05/2024", "2024-05-01T25:00", "20240501"]
)
@pytest.mark.parametrize("fmt", FORMATS)
def test_created_at_must_be_iso_8601(tmp_path: Path, fmt: str, bad: str) -> None:
    problems = load_error(tmp_path, fmt, line(2, "created_at", bad, f"'created_at' {ISO_RULE}"),
                          created_at=["2024-05-01", bad, "2024-05-01T09:30"])
    assert [(p.row, p.value) for p in problems] == [(2, bad)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_created_at_outside_the_representable_range(tmp_path: Path, fmt: str) -> None:
    load_error(tmp_path, fmt, line(1, "created_at", "3000-01-01",
                                   "'created_at' must be between 1677-09-22 and 2262-04-11"),
               created_at=["3000-01-01", "2024-05-01", "2024-05-01"])


@pytest.mark.parametrize("fmt", FORMATS)
def test_deal_size_must_be_a_finite_non_negative_number(tmp_path: Path, fmt: str) -> None:
    problems = load_error(tmp_path, fmt, line(1, "deal_size", "-5", "'deal_size' must be >= 0"),
                          deal_size=["-5", "lots", "inf"])
    assert [(p.row, p.value, p.rule) for p in problems] == [
        (2, "lots", "'deal_size' must be a number"),
        (3, "inf", "'deal_size' must be a finite number (not NaN or infinity)"),
        (1, "-5", "'deal_size' must be >= 0"),
    ]


@pytest.mark.parametrize(("text", "number"), [("1e3", 1000.0), ("+3", 3.0), (".5", 0.5),
                                               ("1.", 1.0), (" 7 ", 7.0), ("-0", 0.0)])
def test_numbers_in_decimal_or_exponent_form(text: str, number: float) -> None:
    frame = pd.DataFrame(lead_columns(deal_size=[text, "1", "1"])).astype("str")
    assert validate_leads(frame)["deal_size"].iat[0] == number


@pytest.mark.parametrize("text", ["1,000", "0x10", "1_000", "٣", "1e", "--1", "1 000", "€5"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_other_spellings_are_not_numbers(tmp_path: Path, fmt: str, text: str) -> None:
    load_error(tmp_path, fmt, line(1, "deal_size", text, "'deal_size' must be a number"),
               deal_size=[text, "1", None])


@pytest.mark.parametrize("fmt", FORMATS)
def test_nan_text_is_not_a_missing_value(tmp_path: Path, fmt: str) -> None:
    load_error(tmp_path, fmt, line(2, "deal_size", "NaN",
                                   "'deal_size' must be a finite number (not NaN or infinity)"),
               deal_size=["1", "NaN", None])


@pytest.mark.parametrize("fmt", FORMATS)
def test_qualification_score_between_0_and_100(tmp_path: Path, fmt: str) -> None:
    problems = load_error(tmp_path, fmt, "'qualification_score' must be between 0 and 100",
                          qualification_score=["100", "100.5", "-1"])
    assert [(p.row, p.value) for p in problems] == [(2, "100.5"), (3, "-1")]


@pytest.mark.parametrize("fmt", FORMATS)
def test_effort_must_be_positive(tmp_path: Path, fmt: str) -> None:
    problems = load_error(tmp_path, fmt, line(1, "effort", "0", "'effort' must be > 0"),
                          effort=["0", "-1", "0.1"])
    assert [(p.row, p.value) for p in problems] == [(1, "0"), (2, "-1")]


@pytest.mark.parametrize("fmt", FORMATS)
def test_intent_is_high_medium_or_low(tmp_path: Path, fmt: str) -> None:
    rule = "'intent' must be one of 'high', 'medium', 'low'"
    problems = load_error(tmp_path, fmt, line(1, "intent", "High", rule),
                          intent=["High", "medium", "urgent"])
    assert [(p.row, p.value) for p in problems] == [(1, "High"), (3, "urgent")]


@pytest.mark.parametrize("fmt", FORMATS)
def test_company_size_is_a_non_negative_integer(tmp_path: Path, fmt: str) -> None:
    problems = load_error(tmp_path, fmt, "'company_size' must be an integer",
                          company_size=["12.5", "-3", "big"])
    assert [(p.row, p.rule) for p in problems] == [
        (1, "'company_size' must be an integer"),
        (3, "'company_size' must be an integer"),
        (2, "'company_size' must be >= 0"),
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_problems_of_every_column_come_together_and_no_row_is_dropped(
    tmp_path: Path, fmt: str
) -> None:
    problems = load_error(
        tmp_path, fmt, "5 problems in the input",
        created_at=["soon", "2024-05-01", "2024-05-01"], deal_size=["1", "-1", "2"],
        intent=["high", "hot", None], effort=["1", "1", "0"], qualification_score=["x", "1", "2"],
    )
    assert sorted((p.row, p.column) for p in problems) == [
        (1, "created_at"), (1, "qualification_score"), (2, "deal_size"), (2, "intent"),
        (3, "effort"),
    ]
    rows = 500
    cols = {k: (v * rows)[:rows] for k, v in lead_columns().items()}
    cols["lead_id"] = [f"L{i}" for i in range(rows)]
    assert len(load_leads(write_table(tmp_path, "many", cols, fmt))) == rows


def test_typed_parquet_columns_are_accepted(tmp_path: Path) -> None:
    frame = pd.DataFrame({
        "lead_id": ["L1", "L2"],
        "created_at": pd.to_datetime(["2024-05-01 10:00", "2024-05-02 00:00"]),  # naive: UTC
        "region": ["NA", "EU"],
        "company_size": [10, 20],
        "deal_size": [100.0, np.nan],
        "effort": [np.nan, 2.0],
    })
    path = tmp_path / "leads.parquet"
    frame.to_parquet(path)
    out = load_leads(path)
    assert str(out["created_at"].dtype) == "datetime64[ns, UTC]"
    assert out["created_at"].iat[0] == pd.Timestamp("2024-05-01 10:00", tz="UTC")
    assert out["company_size"].dtype == "Int64" and out["company_size"].tolist() == [10, 20]
    assert out["effort"].tolist() == [1.0, 2.0]


def test_aware_timestamps_are_converted_to_utc() -> None:
    frame = pd.DataFrame({
        "lead_id": ["L1"],
        "created_at": pd.to_datetime(["2024-05-01 12:00"]).tz_localize("Europe/Berlin"),
        "region": ["EU"],
    })
    out = validate_leads(frame)
    assert out["created_at"].iat[0] == pd.Timestamp("2024-05-01 10:00", tz="UTC")


def test_numbers_are_not_timestamps() -> None:
    frame = pd.DataFrame({"lead_id": ["L1"], "created_at": [20240501], "region": ["EU"]})
    match = line(1, "created_at", 20240501, f"'created_at' {ISO_RULE}")
    with pytest.raises(InputError, match=match):
        validate_leads(frame, file="api")


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2024-05-01", "2024-05-01 00:00"),
        ("2024-05-01T09:30", "2024-05-01 09:30"),
        ("2024-05-01 09:30:00Z", "2024-05-01 09:30"),
        ("2024-05-01T09:30:00+0200", "2024-05-01 07:30"),
        ("2024-05-01T09:30+02", "2024-05-01 07:30"),
        ("2024-05-01T09:30:00.5-05:00", "2024-05-01 14:30:00.5"),
    ],
)
def test_iso_8601_forms_are_read_as_utc(text: str, utc: str) -> None:
    frame = pd.DataFrame({"lead_id": ["L1"], "created_at": [text], "region": ["NA"]})
    assert validate_leads(frame)["created_at"].iat[0] == pd.Timestamp(utc, tz="UTC")
