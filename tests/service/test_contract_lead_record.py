"""A lead typed without a frame is typed exactly as ``validate_leads`` types its one row.

``typed_lead_record`` may say "unsure" (``None``) for anything, and the frame
check then decides; what it must never do is accept a lead the contract
refuses, or type one differently.  Checked on a simulated channel's leads (all
of which it must take) and on records mixing valid, broken and odd values.
"""

from __future__ import annotations

import math
import random
from typing import Any

import pandas as pd
import pytest

from allocator.errors import InputError
from service.contract import validate_leads
from service.contract.lead_record import typed_lead_record
from service.db.records import lead_content
from service.route_scoring import typed_record
from tests.service.api_support import channel, rows

# Per column: values, the first of each valid.
CELLS: dict[str, list[Any]] = {
    "lead_id": ["L1", " L2 ", "", "  ", None, 5],
    "created_at": ["2024-05-01T09:30:00Z", "2024-05-01", "2024-05-01 09:30:00+02:00",
                   "2024-05-01T09:30:00.123456789+0530", "2024-05-01T09:30+01", "2024-13-01",
                   "1500-01-01", "2300-01-01T00:00:00Z", "x", "", None, " 2024-05-01 ",
                   "\u0662\u0660\u0662\u0664-05-01", "2024-02-29", "2023-02-29",
                   "2024-05-01T09:30:00.5Z", "2024-05-01T09:30:00-0330",
                   "2024-05-01T23:59:59.999999+14:00", "2024-05-01T24:00:00",
                   "2024-05-01T09:30:00+24:00", "2024-05-01 09:30", "1677-09-21T00:13:00Z",
                   "2262-04-11T23:47:16.854775807Z", "0001-01-01"],
    "region": ["EU", " NA ", "", None],
    "country": ["DE", "", " ", None, 3],
    "intent": ["high", "low", "HIGH", "", None, " medium "],
    "company_size": [12, 10.0, 10.5, -1, 0, "12", " 1e3 ", "12.0", "1,000", "nan", None, "",
                     2**53, 2**53 - 1, True, "\u0663"],
    "deal_size": [5, 5.5, -0.0, -1, "3.25", ".5", "5.", "+7", "inf", None, "", 1e308, "1e400",
                  "0x10"],
    "qualification_score": [50, 100, 100.0000001, 0, -1e-9, "77.7", None, "", 40],
    "effort": [1, 0, 0.5, -1, None, "", "2", "0.0"],
    "account_owner_partner_id": ["P1", "", None],
    "source": ["web", " web ", "", None, 3, 2.5, True, 2**63 - 1, float("nan")],
}


def _reference(record: dict[str, Any]) -> dict[str, Any] | None:
    try:
        frame = validate_leads(pd.DataFrame.from_records([record]), file="lead")
    except InputError:
        return None
    return {str(k): v for k, v in frame.to_dict("records")[0].items()}


def _same(got: dict[str, Any], want: dict[str, Any]) -> bool:
    if list(got) != list(want):
        return False
    for key, a in got.items():
        b = want[key]
        if type(a) is not type(b):
            return False
        if isinstance(a, float) and math.isnan(a):
            if not math.isnan(b):
                return False
        elif isinstance(a, pd.Timestamp):
            if a != b or a.unit != b.unit or str(a.tz) != str(b.tz):
                return False
        elif a != b:
            return False
    return True


def test_every_lead_of_a_channel_takes_the_fast_path_typed_as_the_frame() -> None:
    records = rows(channel().leads)
    frame = validate_leads(pd.DataFrame.from_records(records), file="leads")
    for record, want in zip(records, frame.to_dict("records"), strict=True):
        row = {str(k): v for k, v in want.items()}
        got = typed_lead_record(record)
        assert got is not None and _same(got, row)
        assert lead_content(got) == lead_content(row)


@pytest.mark.parametrize("name", list(CELLS))
def test_each_value_alone_is_typed_as_the_frame_or_left_to_it(name: str) -> None:
    base = {n: cells[0] for n, cells in CELLS.items()}
    for value in CELLS[name]:
        record = {**base, name: value}
        want, got = _reference(record), typed_lead_record(record)
        if got is not None:
            assert want is not None, f"accepted a lead the contract refuses: {record}"
            assert _same(got, want), (record, got, want)
    assert typed_lead_record(base) is not None


def test_mixed_records_are_typed_as_the_frame_or_left_to_it() -> None:
    rng = random.Random(3)
    taken = refused = 0
    for n in range(300):
        record: dict[str, Any] = {}
        names = list(CELLS)
        if n % 3 == 0:
            rng.shuffle(names)  # key order is kept, as the frame keeps column order
        for name in names:
            if rng.random() < (0.05 if name in ("lead_id", "created_at", "region") else 0.4):
                continue
            cells = CELLS[name]
            record[name] = cells[0] if rng.random() < 0.6 else rng.choice(cells)
        want = _reference(record)
        got = typed_lead_record(record)
        if got is None:
            refused += want is None
            continue
        taken += 1
        assert want is not None, f"accepted a lead the contract refuses: {record}"
        assert _same(got, want), (record, got, want)
    assert taken > 40 and refused > 40


@pytest.mark.parametrize("record", [
    {"lead_id": "L1", "created_at": "2024-05-01", "region": "EU", "intent": "urgent",
     "qualification_score": 140},
    {"lead_id": "", "created_at": "yesterday", "region": "EU"},
    {"lead_id": "L1", "region": "EU", "company_size": 10.5},
])
def test_a_bad_lead_gets_the_contracts_own_problems(record: dict[str, Any]) -> None:
    assert typed_lead_record(record) is None
    with pytest.raises(InputError) as frame_error:
        validate_leads(pd.DataFrame.from_records([record]), file="lead")
    with pytest.raises(InputError) as error:
        typed_record(record)
    assert error.value.problems == frame_error.value.problems
