"""Ingest over HTTP: partners upsert, idempotent leads, history; the CLI's problems as 422s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from allocator.errors import InputError
from service.contract import load_leads, load_partners
from tests.service.api_support import channel, rows

PARTNERS_CSV = """partner_id,name,tier,regions,capacity,open_leads,active
P1,Acme,gold,NA;EMEA,5,0,true
P2,Bolt,silver,"NA, EMEA",-2,0,maybe
P1,Again,bronze,APAC,3,1.5,true
"""


def _triples(problems: list[dict[str, Any]]) -> list[tuple[Any, Any, str]]:
    return [(p["row"], p["column"], p["rule"]) for p in problems]


def _csv_rows(text: str) -> list[dict[str, Any]]:
    lines = text.strip().splitlines()
    header = lines[0].split(",")
    import csv

    return [dict(zip(header, r, strict=True)) for r in csv.reader(lines[1:])]


def test_partner_problems_are_the_clis(client: TestClient, admin: dict[str, str],
                                       tmp_path: Path) -> None:
    path = tmp_path / "partners.csv"
    path.write_text(PARTNERS_CSV)
    with pytest.raises(InputError) as cli:
        load_partners(path)
    expected = [(p.row, p.column, p.rule) for p in cli.value.problems]
    assert len(expected) >= 4

    upload = client.post("/partners/upload", headers=admin,
                         files={"file": ("partners.csv", PARTNERS_CSV.encode(), "text/csv")})
    assert upload.status_code == 422
    assert _triples(upload.json()["problems"]) == expected
    assert {p["file"] for p in upload.json()["problems"]} == {"partners.csv"}

    # The same rows as JSON text cells break the same rules, in the same words.
    as_json = client.post("/partners", headers=admin, json={"partners": _csv_rows(PARTNERS_CSV)})
    assert as_json.status_code == 422
    assert _triples(as_json.json()["problems"]) == expected
    assert "capacity" in as_json.json()["detail"]
    assert client.get("/partners", headers=admin).json()["total"] == 0


def test_schema_problems_name_row_and_column(client: TestClient, admin: dict[str, str]) -> None:
    body = {"partners": [{"partner_id": "P1", "tier": "gold", "regions": ["NA"], "capacity": 2},
                         {"partner_id": "P2", "regions": ["NA"], "capacity": {"n": 2}}]}
    r = client.post("/partners", headers=admin, json=body)
    assert r.status_code == 422
    problems = {(p["file"], p["row"], p["column"]): p["rule"] for p in r.json()["problems"]}
    assert problems == {("partners", 2, "tier"): "'tier' is required",
                        ("partners", 2, "capacity"): "'capacity' must be a number"}


def test_partners_upsert_reports_created_updated_unchanged(
    client: TestClient, admin: dict[str, str]
) -> None:
    partners = rows(channel().partners)
    first = client.post("/partners", headers=admin, json={"partners": partners}).json()
    assert (first["created"], first["updated"], first["unchanged"]) == (len(partners), 0, 0)
    partners[0]["capacity"] += 3
    again = client.post("/partners", headers=admin, json={"partners": partners}).json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 1, len(partners) - 1)
    assert again["updated_ids"] == [partners[0]["partner_id"]]
    stored = client.get(f"/partners/{partners[0]['partner_id']}", headers=admin).json()
    assert stored["capacity"] == partners[0]["capacity"]
    assert isinstance(stored["regions"], list) and stored["regions"]
    log = client.get("/audit", headers=admin, params={"action": "partner.updated"}).json()
    assert log["total"] == 1
    assert log["items"][0]["detail"]["after"] == {"capacity": partners[0]["capacity"]}


def test_leads_are_idempotent_by_id_and_content(client: TestClient, admin: dict[str, str],
                                                tmp_path: Path) -> None:
    leads = rows(channel().leads)
    r = client.post("/leads", headers=admin, json={"leads": leads})
    assert r.status_code == 200
    assert (r.json()["created"], r.json()["unchanged"], r.json()["conflicting"]) == (60, 0, 0)

    again = client.post("/leads", headers=admin, json={"leads": leads}).json()
    assert (again["created"], again["unchanged"], again["conflicting"]) == (0, 60, 0)
    assert "60 unchanged" in again["message"]

    # The same leads as a CSV file are the same content: nothing changes.
    path = tmp_path / "leads.csv"
    channel().leads.to_csv(path, index=False)
    load_leads(path)  # the CLI accepts the file
    upload = client.post("/leads/upload", headers=admin,
                         files={"file": ("leads.csv", path.read_bytes(), "text/csv")})
    assert upload.status_code == 200, upload.json()
    assert (upload.json()["created"], upload.json()["unchanged"]) == (0, 60)

    created_log = client.get("/audit", headers=admin, params={"action": "lead.created"}).json()
    assert created_log["total"] == 60


def test_a_changed_lead_is_a_conflict_never_an_overwrite(
    client: TestClient, admin: dict[str, str]
) -> None:
    leads = rows(channel().leads)[:5]
    client.post("/leads", headers=admin, json={"leads": leads})
    changed = [dict(leads[0], region="APAC", deal_size=1.0), *leads[1:3],
               dict(leads[0], lead_id="NEW-1")]

    rejected = client.post("/leads", headers=admin, json={"leads": changed})
    assert rejected.status_code == 409
    assert rejected.json()["ids"] == [leads[0]["lead_id"]]
    assert "region, deal_size" in rejected.json()["detail"]
    assert client.get("/leads/NEW-1", headers=admin).status_code == 404  # nothing stored

    skipped = client.post("/leads", headers=admin, json={"leads": changed},
                          params={"on_conflict": "skip"})
    assert skipped.status_code == 200
    body = skipped.json()
    assert (body["created"], body["unchanged"], body["conflicting"]) == (1, 2, 1)
    assert body["conflicts"] == [{"lead_id": leads[0]["lead_id"],
                                  "fields": ["region", "deal_size"]}]
    stored = client.get(f"/leads/{leads[0]['lead_id']}", headers=admin).json()
    assert stored["region"] == leads[0]["region"]


def test_lead_problems_and_unknown_ids(client: TestClient, admin: dict[str, str]) -> None:
    bad = [{"lead_id": "L1", "created_at": "yesterday", "region": "NA", "intent": "urgent"},
           {"lead_id": "L1", "created_at": "2024-05-01", "region": "NA", "effort": 0}]
    r = client.post("/leads", headers=admin, json={"leads": bad})
    assert r.status_code == 422
    got = {(p["row"], p["column"]) for p in r.json()["problems"]}
    assert got == {(1, "created_at"), (1, "intent"), (2, "lead_id"), (2, "effort")}
    assert all(p["file"] == "leads" for p in r.json()["problems"])
    missing = client.get("/leads/NOPE", headers=admin)
    assert missing.status_code == 404
    assert missing.json() == {"detail": "No lead has id 'NOPE'."}


def test_history_ingest_is_idempotent(client: TestClient, admin: dict[str, str]) -> None:
    history = rows(channel().history)[:50]
    first = client.post("/history", headers=admin, json={"history": history}).json()
    assert (first["created"], first["unchanged"]) == (50, 0)
    again = client.post("/history", headers=admin, json={"history": history[:10]}).json()
    assert (again["created"], again["unchanged"]) == (0, 10)
    listed = client.get("/history", headers=admin, params={"limit": 5}).json()
    assert listed["total"] == 50 and len(listed["items"]) == 5
    bad = client.post("/history", headers=admin,
                      json={"history": [{"lead_id": "X", "converted": "perhaps"}]})
    assert bad.status_code == 422
    assert bad.json()["problems"][0]["column"] == "converted"


def test_an_unreadable_upload_is_a_422(client: TestClient, admin: dict[str, str]) -> None:
    for name, data in (("leads.csv.gz", b"not gzip at all"), ("leads.xlsx", b"PK"),
                       ("leads.csv", b"\xff\xfe\x00bad")):
        r = client.post("/leads/upload", headers=admin, files={"file": (name, data)})
        assert r.status_code == 422, (name, r.json())
        assert r.json()["problems"][0]["file"] == name


def test_uploads_the_database_could_not_hold_are_422s(
    client: TestClient, admin: dict[str, str], tmp_path: Path
) -> None:
    long_id = "P" * 250
    csv = (f"partner_id,tier,regions,capacity,note\n{long_id},gold,NA,2,ok\n"
           "P2,gold,NA,2,bad\x00note\n")
    r = client.post("/partners/upload", headers=admin,
                    files={"file": ("partners.csv", csv.encode())})
    assert r.status_code == 422, r.json()
    got = {(p["row"], p["column"], p["rule"]) for p in r.json()["problems"]}
    assert got == {(1, "partner_id", "'partner_id' must be at most 200 characters"),
                   (2, "note", "'note' must not contain NUL characters")}
    values = {p["column"]: p["value"] for p in r.json()["problems"]}
    assert values == {"partner_id": "P" * 60, "note": "bad?note"}
    assert client.get("/partners", headers=admin).json()["total"] == 0


def test_a_parquet_upload_keeps_odd_extra_columns(
    client: TestClient, admin: dict[str, str], tmp_path: Path
) -> None:
    import datetime as dt
    from decimal import Decimal

    leads = channel().leads.head(3).copy()
    leads["raw_bytes"] = [b"\x01", b"\x02", None]
    leads["amount"] = pd.Series([Decimal("1.50"), Decimal("2"), None], dtype=object)
    leads["day"] = [dt.date(2024, 1, 2)] * 3
    path = tmp_path / "leads.parquet"
    leads.to_parquet(path)
    r = client.post("/leads/upload", headers=admin,
                    files={"file": ("leads.parquet", path.read_bytes())})
    assert r.status_code == 200, r.json()
    assert r.json()["created"] == 3
    stored = client.get(f"/leads/{leads['lead_id'].iat[0]}", headers=admin).json()
    assert stored["extras"]["day"] == "2024-01-02"
    assert stored["extras"]["amount"] == "1.50"
    again = client.post("/leads/upload", headers=admin,
                        files={"file": ("leads.parquet", path.read_bytes())}).json()
    assert (again["created"], again["unchanged"]) == (0, 3)
