"""partners: every rule of the input contract, from CSV and Parquet, all problems at once."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from allocator.errors import InputError
from allocator.policy import DEFAULT_POLICY_TOML, Policy, PoolPolicy, policy_from_dict
from service.contract import MAX_ROWS_PER_RULE, load_partners, validate_partners
from tests.service.contract_support import FORMATS, find, line, problems_of, write_table

POLICY = policy_from_dict(tomllib.loads(DEFAULT_POLICY_TOML))
LIST_RULE = "'regions' must be ';'-separated items made of letters, digits, '_', '-', '.' or spaces"


def partner_columns(**changes: list[Any]) -> dict[str, list[Any]]:
    cols: dict[str, list[Any]] = {
        "partner_id": ["P1", "P2", "P3"],
        "name": ["Acme", "Beta", None],
        "tier": ["gold", "silver", "bronze"],
        "regions": ["NA;EMEA", "APAC", " North America ; DE "],
        "verticals": ["finance", None, "health;retail"],
        "certifications": ["core", "cloud;edge", None],
        "capacity": ["10", "0", "5"],
        "open_leads": ["1", None, "0"],
        "active": ["true", "No", "1"],
        "segment": ["smb", "ent", "mid"],
    }
    cols.update(changes)
    return cols


def load(tmp_path: Path, fmt: str, **changes: list[Any]) -> pd.DataFrame:
    path = write_table(tmp_path, "partners", partner_columns(**changes), fmt)
    return load_partners(path, policy=POLICY)


def load_error(tmp_path: Path, fmt: str, match: str, **changes: list[Any]):
    with pytest.raises(InputError, match=match) as excinfo:
        load(tmp_path, fmt, **changes)
    return problems_of(excinfo)


@pytest.mark.parametrize("fmt", FORMATS)
def test_valid_partners_are_typed_per_the_contract(tmp_path: Path, fmt: str) -> None:
    out = load(tmp_path, fmt)
    assert list(out["partner_id"]) == ["P1", "P2", "P3"]
    assert out["partner_id"].dtype == "str" and out["tier"].dtype == "str"
    assert out["regions"].tolist() == [("NA", "EMEA"), ("APAC",), ("North America", "DE")]
    assert out["verticals"].tolist() == [("finance",), (), ("health", "retail")]
    assert out["certifications"].tolist() == [("core",), ("cloud", "edge"), ()]
    assert out["capacity"].dtype == np.int64 and out["capacity"].tolist() == [10, 0, 5]
    assert out["open_leads"].dtype == np.int64 and out["open_leads"].tolist() == [1, 0, 0]
    assert out["active"].dtype == bool and out["active"].tolist() == [True, False, True]
    assert out["name"].isna().iat[2]
    assert out["segment"].tolist() == ["smb", "ent", "mid"]  # extra column kept
    assert isinstance(out.index, pd.RangeIndex) and len(out) == 3


@pytest.mark.parametrize("fmt", FORMATS)
def test_absent_optional_columns_are_added_with_their_defaults(tmp_path: Path, fmt: str) -> None:
    cols = partner_columns()
    for name in ("verticals", "certifications", "open_leads", "active", "name"):
        del cols[name]
    out = load_partners(write_table(tmp_path, "partners", cols, fmt))
    assert out["verticals"].tolist() == [(), (), ()]
    assert out["certifications"].tolist() == [(), (), ()]
    assert out["open_leads"].dtype == np.int64 and out["open_leads"].tolist() == [0, 0, 0]
    assert out["active"].dtype == bool and out["active"].tolist() == [True, True, True]
    assert "name" not in out.columns  # no default: not invented


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_missing_required_column_is_reported(tmp_path: Path, fmt: str) -> None:
    cols = partner_columns()
    for name in ("partner_id", "tier", "regions", "capacity"):
        del cols[name]
    with pytest.raises(InputError, match=line(None, "capacity", None,
                                               "required column 'capacity' is missing")) as ei:
        load_partners(write_table(tmp_path, "partners", cols, fmt))
    missing = [(p.column, p.row, p.value) for p in problems_of(ei)]
    assert missing == [("partner_id", None, None), ("tier", None, None),
                       ("regions", None, None), ("capacity", None, None)]


def test_missing_column_suggests_the_closest_header(tmp_path: Path) -> None:
    cols = partner_columns()
    cols["Capacity"] = cols.pop("capacity")
    cols["regoins"] = cols.pop("regions")
    with pytest.raises(InputError) as ei:
        load_partners(write_table(tmp_path, "partners", cols, "csv"))
    rules = [p.rule for p in problems_of(ei)]
    assert rules == ["required column 'regions' is missing (did you mean 'regoins'?)",
                     "required column 'capacity' is missing (did you mean 'Capacity'?)"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_blank_required_cells_are_errors(tmp_path: Path, fmt: str) -> None:
    problems = load_error(
        tmp_path, fmt, line(2, "tier", None, "'tier' is required but the cell is blank"),
        partner_id=["P1", "  ", "P3"], tier=["gold", None, "bronze"],
        regions=["NA", "EMEA", None], capacity=[None, "1", "2"],
    )
    got = {(p.row, p.column, p.rule) for p in problems}
    assert got == {
        (2, "partner_id", "'partner_id' is required but the cell is blank"),
        (2, "tier", "'tier' is required but the cell is blank"),
        (3, "regions", "'regions' is required but the cell is blank"),
        (1, "capacity", "'capacity' is required but the cell is blank"),
    }


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_duplicate_id_names_the_row_it_repeats(tmp_path: Path, fmt: str) -> None:
    ids = ["P1", "P2", "P1", "P1", "P2"]
    n = len(ids)
    cols = {k: (v * 2)[:n] for k, v in partner_columns().items()}
    problems = load_error(tmp_path, fmt, line(3, "partner_id", "P1",
                                              "duplicate partner_id 'P1': first seen in row 1"),
                          **{**cols, "partner_id": ids})
    assert [(p.row, p.value, p.rule) for p in problems] == [
        (3, "P1", "duplicate partner_id 'P1': first seen in row 1"),
        (4, "P1", "duplicate partner_id 'P1': first seen in row 1"),
        (5, "P2", "duplicate partner_id 'P2': first seen in row 2"),
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_capacity_must_be_a_non_negative_integer(tmp_path: Path, fmt: str) -> None:
    match = line(1, "capacity", "ten", "'capacity' must be an integer")
    problems = load_error(tmp_path, fmt, match, capacity=["ten", "2.5", "-2"])
    assert [(p.row, p.column, p.value, p.rule) for p in problems] == [
        (1, "capacity", "ten", "'capacity' must be an integer"),
        (2, "capacity", "2.5", "'capacity' must be an integer"),
        (3, "capacity", "-2", "'capacity' must be >= 0"),
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_integral_decimals_and_padding_are_accepted(tmp_path: Path, fmt: str) -> None:
    out = load(tmp_path, fmt, capacity=["10.0", " 7 ", "1e2"])
    assert out["capacity"].tolist() == [10, 7, 100]


@pytest.mark.parametrize("fmt", FORMATS)
def test_open_leads_range_and_type(tmp_path: Path, fmt: str) -> None:
    problems = load_error(tmp_path, fmt, "'open_leads' must be >= 0",
                          open_leads=["-1", "many", None])
    assert [(p.row, p.value, p.rule) for p in problems] == [
        (2, "many", "'open_leads' must be an integer"),
        (1, "-1", "'open_leads' must be >= 0"),
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_active_accepts_only_the_documented_words(tmp_path: Path, fmt: str) -> None:
    out = load(tmp_path, fmt, active=["YES", "False", None])
    assert out["active"].tolist() == [True, False, True]
    problems = load_error(tmp_path, fmt, line(1, "active", "maybe",
                                              "'active' must be true/false, yes/no or 1/0"),
                          active=["maybe", "y", "2"])
    assert [(p.row, p.value) for p in problems] == [(1, "maybe"), (2, "y"), (3, "2")]


@pytest.mark.parametrize("fmt", FORMATS)
def test_tier_must_be_named_by_the_policy(tmp_path: Path, fmt: str) -> None:
    rule = "tier 'diamond' is not named in the policy (tiers: platinum, gold, silver, bronze)"
    problems = load_error(tmp_path, fmt, line(2, "tier", "diamond", rule),
                          tier=["gold", "diamond", "Gold"])
    assert [(p.row, p.value) for p in problems] == [(2, "diamond"), (3, "Gold")]


def test_any_tier_is_accepted_when_the_policy_names_none(tmp_path: Path) -> None:
    path = write_table(tmp_path, "partners", partner_columns(tier=["a", "b", "c"]), "csv")
    nameless = Policy(pool=PoolPolicy(cascade=()))
    assert nameless.tier_names == ()
    assert load_partners(path, policy=nameless)["tier"].tolist() == ["a", "b", "c"]
    assert load_partners(path)["tier"].tolist() == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("cell", "why"),
    [
        ("NA;;EMEA", "item 2 is empty"),
        ("NA;", "item 2 is empty"),
        (";NA", "item 1 is empty"),
        ("NA,EMEA", "character ',' is not allowed; separate items with ';'"),
        ("NA|EMEA", "character '|' is not allowed; separate items with ';'"),
        ("['NA', 'EMEA']", "character '[' is not allowed; write the items bare, without "
                           "brackets or quotes"),
        ('"NA"', "character '\"' is not allowed; write the items bare, without brackets or "
                 "quotes"),
        ("NA/EMEA", "character '/' is not allowed"),
    ],
)
@pytest.mark.parametrize("fmt", FORMATS)
def test_list_cells_that_do_not_parse(tmp_path: Path, fmt: str, cell: str, why: str) -> None:
    problems = load_error(tmp_path, fmt, line(2, "regions", cell, f"{LIST_RULE}: {why}"),
                          regions=["NA", cell, "EMEA"])
    assert [(p.row, p.column, p.value) for p in problems] == [(2, "regions", cell)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_list_items_may_hold_letters_of_any_script_digits_and_punctuation(
    tmp_path: Path, fmt: str
) -> None:
    out = load(tmp_path, fmt, regions=["São Paulo;Zürich", "us_east-1.b", "NA ;  EMEA"])
    assert out["regions"].tolist() == [("São Paulo", "Zürich"), ("us_east-1.b",), ("NA", "EMEA")]


@pytest.mark.parametrize("fmt", FORMATS)
def test_na_is_a_region_code_not_a_missing_value(tmp_path: Path, fmt: str) -> None:
    out = load(tmp_path, fmt, regions=["NA", "NA;EU", "NA"],
               partner_id=["007", "NA", "1e5"])
    assert out["regions"].tolist() == [("NA",), ("NA", "EU"), ("NA",)]
    assert out["partner_id"].tolist() == ["007", "NA", "1e5"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_problem_in_the_file_is_reported_together(tmp_path: Path, fmt: str) -> None:
    problems = load_error(
        tmp_path, fmt, "6 problems in the input",
        partner_id=["P1", "P1", "P3"], tier=["gold", "wood", "silver"],
        regions=["NA;;EU", "NA", "EU"], capacity=["1", "2", "x"],
        active=["true", "false", "perhaps"], open_leads=["0", "-4", "0"],
    )
    assert sorted((p.row or 0, p.column or "") for p in problems) == [
        (1, "regions"), (2, "open_leads"), (2, "partner_id"), (2, "tier"),
        (3, "active"), (3, "capacity"),
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_problems_are_capped_per_rule_but_every_row_is_scanned(tmp_path: Path, fmt: str) -> None:
    n = 60
    cols = {k: (v * n)[:n] for k, v in partner_columns().items()}
    cols["partner_id"] = [f"P{i}" for i in range(n)]
    cols["capacity"] = ["x"] * (n - 1) + ["-1"]  # the last row breaks another rule
    with pytest.raises(InputError) as ei:
        load_partners(write_table(tmp_path, "partners", cols, fmt))
    problems = problems_of(ei)
    typed = find(problems, "capacity", "must be an integer")
    assert len(typed) == MAX_ROWS_PER_RULE + 1
    assert [p.row for p in typed[:MAX_ROWS_PER_RULE]] == list(range(1, MAX_ROWS_PER_RULE + 1))
    assert typed[-1].row is None and typed[-1].value is None
    assert typed[-1].rule == (f"... and {n - 1 - MAX_ROWS_PER_RULE} more rows: "
                              "'capacity' must be an integer")
    assert [(p.row, p.rule) for p in find(problems, "capacity", ">= 0")] == [
        (n, "'capacity' must be >= 0")
    ]


def test_validate_accepts_a_frame_and_leaves_it_untouched() -> None:
    frame = pd.DataFrame(partner_columns(), index=[10, 11, 12]).astype("str")
    before = frame.copy()
    out = validate_partners(frame, policy=POLICY)
    pd.testing.assert_frame_equal(frame, before)
    assert list(out.index) == [0, 1, 2]
    bad = frame.assign(capacity=["1", "-1", "2"])
    with pytest.raises(InputError, match=line(2, "capacity", "-1", "'capacity' must be >= 0")):
        validate_partners(bad, file="upload.csv")


def test_typed_parquet_columns_are_accepted(tmp_path: Path) -> None:
    frame = pd.DataFrame({
        "partner_id": ["P1", "P2"],
        "tier": ["gold", "silver"],
        "regions": [["NA", "EMEA"], ["APAC"]],
        "capacity": np.array([3, 4], dtype=np.int64),
        "active": [True, False],
        "open_leads": pd.array([1, None], dtype="Int64"),
    })
    path = tmp_path / "partners.parquet"
    frame.to_parquet(path)
    out = load_partners(path, policy=POLICY)
    assert out["regions"].tolist() == [("NA", "EMEA"), ("APAC",)]
    assert out["capacity"].tolist() == [3, 4] and out["capacity"].dtype == np.int64
    assert out["active"].tolist() == [True, False]
    assert out["open_leads"].tolist() == [1, 0] and out["open_leads"].dtype == np.int64


def test_typed_list_items_follow_the_same_rule() -> None:
    frame = pd.DataFrame({"partner_id": ["P1", "P2", "P3", "P4"], "tier": ["gold"] * 4,
                          "regions": [["NA", ""], ["a;b"], ["x", None], ["EU"]],
                          "verticals": [[], None, ["retail"], [7]], "capacity": [1, 2, 3, 4]})
    with pytest.raises(InputError) as ei:
        validate_partners(frame)
    assert [(p.row, p.column, p.value, p.rule.split(": ")[-1]) for p in problems_of(ei)] == [
        (1, "regions", ["NA", ""], "item 2 is empty"),
        (2, "regions", ["a;b"], "item 1 contains ';'"),
        (3, "regions", ["x", None], "item 2 is not text"),
        (4, "verticals", [7], "item 1 is not text"),
    ]


def test_list_columns_may_mix_text_cells_and_typed_lists() -> None:
    frame = pd.DataFrame({"partner_id": ["P1", "P2", "P3"], "tier": ["gold"] * 3,
                          "regions": [("NA", "EU"), "APAC; JP", np.array(["DE"])],
                          "capacity": [1, 2, 3]})
    out = validate_partners(frame)
    assert out["regions"].tolist() == [("NA", "EU"), ("APAC", "JP"), ("DE",)]
    assert out["verticals"].tolist() == [(), (), ()]


# -- reading the file itself ------------------------------------------------------------------


def write_text(tmp_path: Path, text: str | bytes, name: str = "partners.csv") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


HEADER = "partner_id,tier,regions,capacity\n"


def test_rows_with_extra_fields_are_reported_and_other_rows_keep_their_numbers(
    tmp_path: Path,
) -> None:
    text = HEADER + "P1,gold,NA,1\nP2,gold,NA,2,oops\nP3,gold,NA,-3\nP4,gold,NA,4,5,6\nP5,x,NA,5\n"
    with pytest.raises(InputError) as ei:
        load_partners(write_text(tmp_path, text), policy=POLICY)
    got = [(p.row, p.column, p.rule) for p in problems_of(ei)]
    assert got == [
        (2, None, "the row has 5 fields but the header has 4"),
        (4, None, "the row has 6 fields but the header has 4"),
        (3, "capacity", "'capacity' must be >= 0"),
        (5, "tier", "tier 'x' is not named in the policy (tiers: platinum, gold, silver, bronze)"),
    ]


def test_duplicate_header_columns_are_reported(tmp_path: Path) -> None:
    text = "partner_id,tier,regions,capacity,tier\nP1,gold,NA,1,silver\n"
    with pytest.raises(InputError, match=line(None, "tier", None,
                                              "column 'tier' appears 2 times in the header")):
        load_partners(write_text(tmp_path, text))


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = write_text(tmp_path, ("\ufeff" + HEADER + "P1,gold,NA,1\n").encode("utf-8"))
    assert load_partners(path)["partner_id"].tolist() == ["P1"]


def test_header_only_file_gives_an_empty_typed_frame(tmp_path: Path) -> None:
    out = load_partners(write_text(tmp_path, HEADER))
    assert len(out) == 0 and out["capacity"].dtype == np.int64


@pytest.mark.parametrize(
    ("content", "name", "rule"),
    [
        ("", "partners.csv", "the file is empty: a header row is required"),
        (HEADER.encode() + b"P1,gold,\xff\xfe,1\n", "partners.csv",
         "the file is not UTF-8 text (invalid start byte at byte"),
        ("not parquet", "partners.parquet", "cannot read the Parquet file:"),
        ("a,b", "partners.xlsx", "unsupported file type '.xlsx': use .csv or .parquet"),
        (b"\x1f\x8b\x08\x00not really gzip", "partners.csv.gz", "cannot read the file: "),
    ],
)
def test_unreadable_files_are_input_errors(
    tmp_path: Path, content: str | bytes, name: str, rule: str
) -> None:
    path = write_text(tmp_path, content, name)
    with pytest.raises(InputError) as ei:
        load_partners(path)
    (problem,) = problems_of(ei)
    assert problem.file == str(path) and problem.row is None and rule in problem.rule


def test_a_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as ei:
        load_partners(tmp_path / "nope.csv")
    assert ei.value.filename == str(tmp_path / "nope.csv")


def test_a_compressed_csv_is_read(tmp_path: Path) -> None:
    path = tmp_path / "partners.csv.gz"
    pd.DataFrame(partner_columns()).to_csv(path, index=False)
    assert load_partners(path)["regions"].iat[0] == ("NA", "EMEA")
