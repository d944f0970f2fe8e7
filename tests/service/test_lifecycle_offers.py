"""Offers over HTTP: blind until accepted, partner isolation, the state machine's 409s, reasons,
dispositions becoming training history, and partner performance figures."""

from __future__ import annotations

import io
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from service.cli.main import app as cli
from service.contract import load_history
from service.db.tables import Assignment, HistoryRecord
from tests.service.lifecycle_support import PARTNERS, T0, Service, check_invariants, service

H = timedelta(hours=1)
OTHERS = re.compile(r"(?<![\w-])P[1-6](?![\w-])")


def _busiest(svc: Service) -> tuple[str, list[dict[str, Any]]]:
    """The partner with the most offers (at least two: eight leads, five EU partners)."""
    by = {p["partner_id"]: svc.offers(p["partner_id"]) for p in PARTNERS}
    pid = max(sorted(by), key=lambda p: len(by[p]))
    assert len(by[pid]) >= 2
    return pid, by[pid]


def _names_a_rival(text: str, own: str) -> bool:
    return any(m != own for m in OTHERS.findall(text))


def test_offers_are_blind_and_each_partner_sees_only_its_own(db_url: str,
                                                            tmp_path: Path) -> None:
    with service(db_url, tmp_path) as svc:
        everyone = svc.get("/offers", params={"limit": 1000}).json()
        assert everyone["total"] == 8
        assert all(o["lead"]["contact"]["contact_email"] for o in everyone["items"])  # admin
        pid, mine = _busiest(svc)
        assert {o["partner_id"] for o in mine} == {pid}
        assert {o["id"] for o in mine} == {o["id"] for o in everyone["items"]
                                            if o["partner_id"] == pid}
        text = json.dumps(mine)
        assert "example.com" not in text and "Contact " not in text
        lead = mine[0]["lead"]
        assert set(lead) >= {"region", "vertical", "product", "company_size", "intent"}
        assert lead["contact"] is None and mine[0]["allowed"] == ["accept", "reject"]
        assert svc.get("/offers", svc.partner[pid], params={"partner_id": "P6"}).status_code == 403

        theirs = next(o for o in everyone["items"] if o["partner_id"] != pid)
        key = svc.partner[pid]
        assert svc.get(f"/offers/{theirs['id']}", key).status_code == 404
        for action, body in (("accept", None), ("reject", {"reason": "duplicate"}),
                             ("disposition", {"disposition": "contacted"})):
            r = svc.post(f"/offers/{theirs['id']}/{action}", key, json=body)
            assert r.status_code == 404, (action, r.json())

        # Rejected and re-offered: the new holder reads why, without the rival's name.
        r = svc.post(f"/offers/{theirs['id']}/reject", svc.partner[theirs["partner_id"]],
                     json={"reason": "bad_contact_data", "text": "bounced"})
        assert r.status_code == 200
        holder = svc.live()[str(theirs["lead_id"])]
        seen = svc.get(f"/offers/{holder.id}", svc.partner[holder.partner_id]).json()
        assert theirs["partner_id"] in holder.reason  # ops see who declined it ...
        assert not _names_a_rival(seen["reason"], holder.partner_id)  # ... partners do not
        assert "another partner" in seen["reason"]
        expl = svc.get(f"/assignments/{holder.id}/explanation",
                       svc.partner[holder.partner_id]).json()
        assert not _names_a_rival(json.dumps(expl), holder.partner_id)
        log = svc.get("/audit", svc.partner[holder.partner_id], params={"limit": 1000}).json()
        assert not _names_a_rival(json.dumps(log["items"]), holder.partner_id)
        with svc.session() as s:
            check_invariants(s)


def test_moves_the_state_does_not_allow_are_409_naming_the_allowed_ones(
        db_url: str, tmp_path: Path) -> None:
    with service(db_url, tmp_path) as svc:
        pid, mine = _busiest(svc)
        key = svc.partner[pid]
        first, second = mine[0]["id"], mine[1]["id"]
        r = svc.post(f"/offers/{first}/disposition", key, json={"disposition": "won"})
        assert r.status_code == 409
        assert r.json()["state"] == "offered" and r.json()["event"] == "win"
        assert r.json()["allowed"] == ["accept", "reject", "expire", "reclaim"]
        assert re.search(r"Cannot 'win' a lead that is 'offered'", r.json()["detail"])

        assert svc.post(f"/offers/{first}/accept", key).status_code == 200
        r = svc.post(f"/offers/{first}/accept", key)
        assert r.status_code == 409 and r.json()["state"] == "accepted"
        r = svc.post(f"/offers/{first}/reject", key, json={"reason": "duplicate"})
        assert r.status_code == 409 and "reject" not in r.json()["allowed"]
        assert svc.post(f"/offers/{first}/disposition", key,
                        json={"disposition": "lost", "reason": "no_budget"}).status_code == 200
        r = svc.post(f"/offers/{first}/disposition", key, json={"disposition": "won"})
        assert r.status_code == 409 and "it is final" in r.json()["detail"]

        bad = [({"reason": "too_far"}, "reject reason must be one of"),
               ({"reason": "other"}, "'other' needs a text"),
               ({"reason": "other", "text": "x" * 501}, "at most 500 characters")]
        for body, words in bad:
            r = svc.post(f"/offers/{second}/reject", key, json=body)
            assert r.status_code == 422 and words in r.json()["detail"], r.json()
        r = svc.post(f"/offers/{second}/disposition", key, json={"disposition": "lost"})
        assert r.status_code == 422 and "needs a 'reason'" in r.json()["detail"]

        # Past its deadline an offer cannot be accepted, even before the sweep has run.
        svc.clock.set(T0 + 24 * H)
        r = svc.post(f"/offers/{second}/accept", key)
        assert r.status_code == 409 and "deadline passed" in r.json()["detail"]
        assert r.json()["ids"] == [str(second)]


def test_dispositions_skip_ahead_and_outcomes_become_history(db_url: str,
                                                             tmp_path: Path) -> None:
    with service(db_url, tmp_path) as svc:
        pid, mine = _busiest(svc)
        key = svc.partner[pid]
        won, lost = mine[0], mine[1]
        svc.clock.set(T0 + 2 * H)
        for offer in (won, lost):
            assert svc.post(f"/offers/{offer['id']}/accept", key).status_code == 200
        svc.clock.set(T0 + 5 * H)
        r = svc.post(f"/offers/{won['id']}/disposition", key,
                     json={"disposition": "qualified", "note": "budget confirmed"})
        assert r.status_code == 200 and r.json()["offer"]["contacted_at"] is not None
        assert r.json()["offer"]["allowed"] == ["opportunity", "won", "lost"]
        assert svc.post(f"/offers/{won['id']}/disposition", key,
                        json={"disposition": "won"}).status_code == 200
        r = svc.post(f"/offers/{lost['id']}/disposition", key,
                     json={"disposition": "lost", "reason": "chose_competitor",
                           "text": "went with the incumbent"})
        assert r.status_code == 200
        assert (r.json()["offer"]["reason_code"], r.json()["offer"]["allowed"]) == (
            "chose_competitor", [])

        with svc.session() as s:
            rows = {h.lead_id: h for h in s.scalars(sa.select(HistoryRecord))}
        assert {k: v.converted for k, v in rows.items()} == {won["lead_id"]: 1,
                                                              lost["lead_id"]: 0}
        assert rows[won["lead_id"]].assigned_at == T0

        csv = svc.get("/history/export").text
        assert "example.com" not in csv and "contact_" not in csv
        path = tmp_path / "history.csv"
        path.write_text(csv)
        history = load_history(path)  # what `fairlead train --history` reads
        assert sorted(history["converted"].tolist()) == [0, 1]
        assert set(history["partner_id"]) == {pid}
        assert str(history["assigned_at"].dtype) == "datetime64[ns, UTC]"
        assert svc.get("/history/export", svc.partner[pid]).status_code == 403

        out = tmp_path / "exported" / "history.csv"
        result = CliRunner().invoke(cli, ["export-history", "--db", db_url, "--out", str(out),
                                          "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["rows"] == 2
        assert pd.read_csv(out).equals(pd.read_csv(io.StringIO(csv)))


def test_outcomes_carry_the_furthest_funnel_stage(db_url: str, tmp_path: Path) -> None:
    with service(db_url, tmp_path) as svc:
        won, qualified, accepted = svc.get("/offers", params={"limit": 1000}).json()["items"][:3]
        steps = {won["id"]: ["contacted", "qualified", "opportunity", "won"],
                 qualified["id"]: ["qualified", "lost"],  # skips 'contacted'
                 accepted["id"]: ["lost"]}
        svc.clock.set(T0 + 2 * H)
        for offer in (won, qualified, accepted):
            key = svc.partner[offer["partner_id"]]
            assert svc.post(f"/offers/{offer['id']}/accept", key).status_code == 200
            for disposition in steps[offer["id"]]:
                svc.clock.advance(hours=1)
                body = {"disposition": disposition,
                        **({"reason": "no_budget"} if disposition == "lost" else {})}
                r = svc.post(f"/offers/{offer['id']}/disposition", key, json=body)
                assert r.status_code == 200, r.json()
        ingested = {"lead_id": "H1", "partner_id": "P1", "region": "EU",
                    "assigned_at": "2025-01-06T09:00:00Z", "converted": 1}
        assert svc.post("/history", json={"history": [ingested]}).json()["created"] == 1

        csv = svc.get("/history/export").text
        frame = pd.read_csv(io.StringIO(csv))
        columns = list(frame.columns)
        assert columns[columns.index("converted") + 1] == "stage"
        h1 = frame[frame["lead_id"] == "H1"]  # ingested without a stage: blank, not made up
        assert h1["converted"].tolist() == [1] and h1["stage"].isna().all()
        got = {r.lead_id: (r.stage, r.converted) for r in frame.itertuples() if r.lead_id != "H1"}
        assert got == {won["lead_id"]: ("won", 1), qualified["lead_id"]: ("qualified", 0),
                       accepted["lead_id"]: ("accepted", 0)}

        out = tmp_path / "history.csv"
        result = CliRunner().invoke(cli, ["export-history", "--db", db_url, "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert out.read_text() == csv


def test_partner_performance(db_url: str, tmp_path: Path) -> None:
    with service(db_url, tmp_path) as svc:
        pid, mine = _busiest(svc)
        key = svc.partner[pid]
        svc.clock.set(T0 + 2 * H)
        assert svc.post(f"/offers/{mine[0]['id']}/accept", key).status_code == 200
        assert svc.post(f"/offers/{mine[1]['id']}/reject", key,
                        json={"reason": "no_capacity"}).status_code == 200
        svc.clock.set(T0 + 5 * H)
        assert svc.post(f"/offers/{mine[0]['id']}/disposition", key,
                        json={"disposition": "won"}).status_code == 200
        svc.clock.set(T0 + 24 * H)
        svc.sweep()  # the partner's other round offers expire
        silent = len(mine) - 2
        with svc.session() as s:
            pending = int(s.scalar(sa.select(sa.func.count()).select_from(Assignment).where(
                Assignment.partner_id == pid, Assignment.state == "offered")) or 0)
        r = svc.get(f"/partners/{pid}/performance", key)
        assert r.status_code == 200, r.json()
        perf = r.json()
        assert (perf["accepted"], perf["rejected"], perf["expired"], perf["won"]) == (
            1, 1, silent, 1)
        assert perf["offers"] == len(mine) + pending and perf["pending"] == pending
        assert perf["acceptance_rate"] == pytest.approx(round(1 / (2 + silent), 4))
        assert perf["hours_to_accept"] == {"mean": 2.0, "median": 2.0, "p90": 2.0}
        assert perf["hours_to_first_contact"]["mean"] == 3.0
        assert perf["sla_misses"] == silent and perf["conversion_rate"] == 1.0

        since = svc.get(f"/partners/{pid}/performance",
                        params={"since": (T0 + H).isoformat()}).json()
        assert since["offers"] == pending  # only offers made after the round
        other = next(p["partner_id"] for p in PARTNERS if p["partner_id"] != pid)
        assert svc.get(f"/partners/{other}/performance", key).status_code == 403
        assert svc.get("/partners/NOPE/performance").status_code == 404
