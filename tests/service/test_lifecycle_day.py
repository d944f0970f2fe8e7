"""A full day (and a half) of a round's leads, driven by a FrozenClock, on SQLite and PostgreSQL.

A round offers eight leads; partners accept some, reject some and stay silent
on the rest.  The sweep runs at chosen minutes: offers expire exactly at their
deadline and not a minute before, rejected and expired leads are re-offered to
a partner that never declined them, accepted leads without contact are
reclaimed 48 h after acceptance, leads out of re-routes go to the pool, the
pool opens tier by tier every four hours, and two partners racing for one
pooled lead (two app instances, real connections) leave exactly one winner;
leads lost at the end keep in history the furthest funnel stage they reached.
After every step: no lead is live with two partners, and the room each partner
uses equals what it holds.
"""

from __future__ import annotations

import io
import threading
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.db.tables import Assignment, AuditEntry, PoolEntry
from tests.service.lifecycle_support import T0, TIERS, Service, check_invariants, service

H = timedelta(hours=1)


def _check(svc: Service) -> None:
    with svc.session() as s:
        check_invariants(s)


def _holder(svc: Service, lead_id: str) -> Assignment:
    return svc.live()[lead_id]


def _declined(svc: Service, lead_id: str) -> set[str]:
    with svc.session() as s:
        return set(s.scalars(sa.select(Assignment.partner_id).where(
            Assignment.lead_id == lead_id,
            Assignment.state.in_(("rejected", "expired", "reclaimed")))))


def _audit_times(svc: Service, action: str) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    with svc.session() as s:
        for lid, at in s.execute(sa.select(AuditEntry.lead_id, AuditEntry.at)
                                 .where(AuditEntry.action == action)):
            out.setdefault(str(lid), []).append(at)
    return out


def _expect_reoffered(svc: Service, lead_id: str, at: Any, reroute: int) -> Assignment:
    a = _holder(svc, lead_id)
    assert a.state == "offered" and a.origin == "reroute" and a.reroutes == reroute
    assert a.created_at == at and a.due_at == at + 24 * H
    assert a.partner_id not in _declined(svc, lead_id)
    assert f"re-route {reroute} of 2" in a.reason and "price" in a.reason
    return a


def _race(svc: Service, settings_url: str, lead_id: str, racers: list[str]) -> list[int]:
    """One app instance per racer (own engine, own connections), claims released together."""
    settings = svc.app.state.settings.model_copy(
        update={"database_url": settings_url, "migrate_on_start": False})
    gate = threading.Barrier(len(racers), timeout=60)
    codes: dict[str, int] = {}
    with ExitStack() as stack:
        clients = [stack.enter_context(TestClient(create_app(settings, clock=svc.clock)))
                   for _ in racers]

        def claim(pid: str, client: TestClient) -> None:
            gate.wait()
            codes[pid] = client.post(f"/pool/{lead_id}/claim",
                                     headers=svc.partner[pid]).status_code

        threads = [threading.Thread(target=claim, args=(p, c))
                   for p, c in zip(racers, clients, strict=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    return [codes[p] for p in racers]


def test_a_day_of_offers_expiries_reroutes_and_the_pool(db_url: str, tmp_path: Path) -> None:
    with service(db_url, tmp_path) as svc:
        _run_day(svc, db_url, tmp_path)


def _run_day(svc: Service, db_url: str, folder: Path) -> None:
    clock = svc.clock
    live = svc.live()
    assert sorted(live) == [f"L{i}" for i in range(8)]
    assert all(a.due_at == T0 + 24 * H and a.state == "offered" for a in live.values())
    _check(svc)
    first = {lid: a.partner_id for lid, a in live.items()}

    # 10:00 — two leads accepted, two rejected (re-offered at once), four left in silence.
    clock.set(T0 + H)
    for lid in ("L0", "L1"):
        offer = next(o for o in svc.offers(first[lid]) if o["lead_id"] == lid)
        assert offer["lead"]["contact"] is None and "accepted" in offer["lead"]["contact_withheld"]
        r = svc.post(f"/offers/{offer['id']}/accept", svc.partner[first[lid]])
        assert r.status_code == 200, r.json()
        shown = r.json()["offer"]
        assert shown["lead"]["contact"]["contact_email"] == f"c{lid[1:]}@example.com"
        assert shown["contact_by"] == (T0 + 49 * H).isoformat().replace("+00:00", "Z")
        _check(svc)
    for lid in ("L2", "L3"):
        offer_id = live[lid].id
        r = svc.post(f"/offers/{offer_id}/reject", svc.partner[first[lid]],
                     json={"reason": "no_capacity"})
        assert r.status_code == 200, r.json()
        assert r.json()["next"] == {"action": "offer", "reason": "re-offered to another partner",
                                    "assignment_id": None, "partner_id": None}
        _expect_reoffered(svc, lid, T0 + H, 1)
        _check(svc)

    # 11:00 — L0 is contacted; L1 stays accepted without contact (reclaimed at 10:00 + 48 h).
    clock.set(T0 + 2 * H)
    r = svc.post(f"/offers/{live['L0'].id}/disposition", svc.partner[first["L0"]],
                 json={"disposition": "contacted"})
    assert r.status_code == 200 and r.json()["offer"]["contact_by"] is None
    _check(svc)

    # One minute before the deadline nothing expires; at the deadline the four silent do.
    clock.set(T0 + 24 * H - timedelta(minutes=1))
    assert svc.sweep()["expired"] == 0
    clock.set(T0 + 24 * H)
    report = svc.sweep()
    assert (report["expired"], report["rerouted"], report["pooled"]) == (4, 4, 0), report
    expired_at = _audit_times(svc, "offer.expired")
    assert sorted(expired_at) == ["L4", "L5", "L6", "L7"]
    assert all(t == [T0 + 24 * H] for t in expired_at.values())
    for lid in ("L4", "L5", "L6", "L7"):
        _expect_reoffered(svc, lid, T0 + 24 * H, 1)
    assert _holder(svc, "L2").state == "offered"  # re-offered at 10:00: due at 10:00 tomorrow
    _check(svc)

    # 10:00 next day: the two leads re-offered after the rejects expire; second re-route.
    clock.set(T0 + 25 * H)
    report = svc.sweep()
    assert (report["expired"], report["rerouted"]) == (2, 2), report
    for lid in ("L2", "L3"):
        _expect_reoffered(svc, lid, T0 + 25 * H, 2)
    _check(svc)

    # Day 3, 09:00: the second offers of L4-L7 expire (re-route 2 of 2).
    clock.set(T0 + 48 * H)
    report = svc.sweep()
    assert (report["expired"], report["reclaimed"]) == (4, 0), report
    _check(svc)

    # 10:00: L1 (accepted, never contacted) is reclaimed and re-offered; L2 and L3 are out of
    # re-routes and go to the pool.
    clock.set(T0 + 49 * H)
    report = svc.sweep()
    assert (report["reclaimed"], report["expired"], report["pooled"]) == (1, 2, 2), report
    assert _audit_times(svc, "offer.reclaimed") == {"L1": [T0 + 49 * H]}
    assert first["L1"] in _declined(svc, "L1")
    _expect_reoffered(svc, "L1", T0 + 49 * H, 1)
    assert "L2" not in svc.live() and "L3" not in svc.live()
    _check(svc)

    _cascade(svc, "L2", T0 + 49 * H)
    _claim_race(svc, db_url, folder, "L3", T0 + 49 * H)
    _next_round_takes_the_pool(svc, "L2")
    _lost_leads_keep_their_stage(svc, first["L0"])


def _next_round_takes_the_pool(svc: Service, lead_id: str) -> None:
    """A later round offers a pooled lead again, never to a partner that declined it."""
    svc.clock.advance(hours=1)
    r = svc.post("/rounds", json={"policy_id": 1, "lead_ids": [lead_id]})
    assert r.status_code == 201, r.json()
    a = _holder(svc, lead_id)
    assert (a.origin, a.state, a.round_id) == ("round", "offered", r.json()["id"])
    assert a.partner_id not in _declined(svc, lead_id)
    with svc.session() as s:
        entry = s.scalars(sa.select(PoolEntry).where(PoolEntry.lead_id == lead_id)).one()
        assert (entry.outcome, entry.closed_at) == ("reoffered", svc.clock.now())
    assert lead_id not in [p["lead_id"] for p in svc.get("/pool").json()["items"]]
    _check(svc)


def _lost_leads_keep_their_stage(svc: Service, l0_partner: str) -> None:
    """L0 (contacted on day 1) and L3 (claimed from the pool) are lost: history keeps how far."""
    for lead_id, pid in (("L0", l0_partner), ("L3", _holder(svc, "L3").partner_id)):
        r = svc.post(f"/offers/{_holder(svc, lead_id).id}/disposition", svc.partner[pid],
                     json={"disposition": "lost", "reason": "no_response"})
        assert r.status_code == 200, r.json()
    frame = pd.read_csv(io.StringIO(svc.get("/history/export").text))
    assert {r.lead_id: (r.stage, r.converted) for r in frame.itertuples()} == {
        "L0": ("contacted", 0), "L3": ("accepted", 0)}  # a claimed lead counts as accepted
    _check(svc)


def _visible(svc: Service, lead_id: str) -> list[str]:
    items = svc.get("/pool").json()["items"]
    return next(p["visible_tiers"] for p in items if p["lead_id"] == lead_id)


def _sees(svc: Service, pid: str, lead_id: str) -> bool:
    r = svc.get("/pool", svc.partner[pid])
    assert r.status_code == 200
    return lead_id in [p["lead_id"] for p in r.json()["items"]]


def _cascade(svc: Service, lead_id: str, pooled_at: Any) -> None:
    """The pool opens one tier every 4 hours; only eligible partners that never declined see."""
    declined = _declined(svc, lead_id)
    assert len(declined) == 3  # rejected, then two offers let expire
    tier_of = {"P1": "platinum", "P2": "gold", "P3": "silver", "P4": "bronze", "P5": "gold"}
    for k in range(len(TIERS)):
        if k:
            svc.clock.set(pooled_at + k * 4 * H - timedelta(minutes=1))
            assert _visible(svc, lead_id) == list(TIERS[:k])
        svc.clock.set(pooled_at + k * 4 * H)
        assert _visible(svc, lead_id) == list(TIERS[:k + 1])
        for pid, t in tier_of.items():
            expected = pid not in declined and TIERS.index(t) <= k
            assert _sees(svc, pid, lead_id) == expected, (pid, k)
    assert not _sees(svc, "P6", lead_id)  # covers US only: never eligible
    shown = next(p for p in svc.get("/pool", svc.partner[next(
        p for p in tier_of if p not in declined)]).json()["items"] if p["lead_id"] == lead_id)
    assert shown["lead"]["contact"] is None and shown["reason"].startswith("pooled")
    for pid in declined:
        r = svc.post(f"/pool/{lead_id}/claim", svc.partner[pid])
        assert r.status_code == 409 and "rejected" in r.json()["detail"]
    _check(svc)


def _claim_race(svc: Service, db_url: str, folder: Path, lead_id: str, pooled_at: Any) -> None:
    svc.clock.set(pooled_at + 12 * H + timedelta(minutes=5))  # every tier sees it now
    racers = sorted({"P1", "P2", "P3", "P4", "P5"} - _declined(svc, lead_id))
    assert len(racers) == 2
    codes = _race(svc, db_url, lead_id, racers)
    assert sorted(codes) == [200, 409], codes
    winner = racers[codes.index(200)]
    a = _holder(svc, lead_id)
    assert (a.partner_id, a.state, a.origin) == (winner, "claimed", "claim")
    assert a.due_at == svc.clock.now() + 48 * H
    with svc.session() as s:
        entry = s.scalars(sa.select(PoolEntry).where(PoolEntry.lead_id == lead_id)).one()
        assert (entry.outcome, entry.claimed_by) == ("claimed", winner)
    offer = svc.get(f"/offers/{a.id}", svc.partner[winner]).json()
    assert offer["lead"]["contact"]["contact_name"] == f"Contact {lead_id[1:]}"
    loser = racers[1 - codes.index(200)]
    assert svc.get(f"/offers/{a.id}", svc.partner[loser]).status_code == 404
    _check(svc)


@pytest.mark.parametrize("n", [3])
def test_claims_racing_on_one_connection_pool_still_have_one_winner(
        db_url: str, tmp_path: Path, n: int) -> None:
    """Several claims at once through one app (its thread pool): still exactly one 200."""
    with service(db_url, tmp_path) as svc:
        svc.clock.set(T0 + H)
        lead_id = "L5"
        for _ in range(3):  # three partners reject it in turn: out of re-routes, pooled
            a = _holder(svc, lead_id)
            r = svc.post(f"/offers/{a.id}/reject", svc.partner[a.partner_id],
                         json={"reason": "other", "text": "not for us"})
            assert r.status_code == 200, r.json()
        assert r.json()["next"]["action"] == "pool"
        svc.clock.advance(hours=12)
        racers = sorted({"P1", "P2", "P3", "P4", "P5"} - _declined(svc, lead_id))
        gate = threading.Barrier(len(racers) * n, timeout=60)
        codes: list[int] = []

        def claim(pid: str) -> None:
            gate.wait()
            codes.append(svc.post(f"/pool/{lead_id}/claim", svc.partner[pid]).status_code)

        threads = [threading.Thread(target=claim, args=(p,)) for p in racers for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert sorted(codes) == [200] + [409] * (len(threads) - 1), codes
        _check(svc)
