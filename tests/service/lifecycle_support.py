"""Helpers of the lifecycle tests: a small channel, a service on a FrozenClock, invariants."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from service.api.app import create_app
from service.db.keys import create_key
from service.db.room import latest_round_id
from service.db.tables import Assignment, PoolEntry, RoundPartner
from service.lifecycle.clock import FrozenClock
from service.settings import Settings

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)  # a Monday, 09:00 UTC
TIERS = ("platinum", "gold", "silver", "bronze")

POLICY_TOML = """
[objective]
value = "conversions"
[qualification]
min_score = 0
[eligibility]
match_region = true
require_certification = false
honor_account_owner = false
[fairness]
partner_floor = 0
[tiers.platinum]
[tiers.gold]
[tiers.silver]
[tiers.bronze]
[sla]
accept_within_hours = 24
contact_within_hours = 48
max_reroutes = 2
[pool]
cascade = ["platinum", "gold", "silver", "bronze"]
step_hours = 4
"""

#: Five partners covering EU (two of them gold), one covering US only.
PARTNERS: list[dict[str, Any]] = [
    {"partner_id": "P1", "name": "Plat", "tier": "platinum", "regions": "EU", "capacity": 3,
     "verticals": "saas"},
    {"partner_id": "P2", "name": "Gold A", "tier": "gold", "regions": "EU", "capacity": 3},
    {"partner_id": "P3", "name": "Silver", "tier": "silver", "regions": "EU", "capacity": 3},
    {"partner_id": "P4", "name": "Bronze", "tier": "bronze", "regions": "EU", "capacity": 3},
    {"partner_id": "P5", "name": "Gold B", "tier": "gold", "regions": "EU", "capacity": 3},
    {"partner_id": "P6", "name": "Far", "tier": "gold", "regions": "US", "capacity": 3},
]


def lead(i: int, **kw: Any) -> dict[str, Any]:
    """Lead ``L{i}`` in EU with contact details (hidden from partners until accepted)."""
    return {"lead_id": f"L{i}", "created_at": "2025-03-03T08:00:00Z", "region": "EU",
            "vertical": "saas" if i % 2 else "retail", "company_size": 50 + i,
            "intent": ("high", "medium", "low")[i % 3], "qualification_score": 40 + (6 * i) % 60,
            "contact_name": f"Contact {i}", "contact_email": f"c{i}@example.com", **kw}


@dataclass
class Service:
    """An app on a FrozenClock, its client, and keys for admin and each partner."""

    app: FastAPI
    client: TestClient
    clock: FrozenClock
    admin: dict[str, str]
    partner: dict[str, dict[str, str]] = field(default_factory=dict)

    def session(self) -> Session:
        return self.app.state.sessionmaker()  # type: ignore[no-any-return]

    def key(self, role: str, partner_id: str | None = None) -> dict[str, str]:
        with self.session() as s:
            token = create_key(s, role, partner_id=partner_id).token
            s.commit()
        return {"X-API-Key": token}

    def post(self, path: str, who: dict[str, str] | None = None, **kw: Any) -> Any:
        return self.client.post(path, headers=who or self.admin, **kw)

    def get(self, path: str, who: dict[str, str] | None = None, **kw: Any) -> Any:
        return self.client.get(path, headers=who or self.admin, **kw)

    def sweep(self) -> dict[str, Any]:
        r = self.post("/lifecycle/sweep")
        assert r.status_code == 200, r.json()
        out: dict[str, Any] = r.json()
        return out

    def offers(self, pid: str, **params: Any) -> list[dict[str, Any]]:
        r = self.get("/offers", self.partner[pid], params={"limit": 1000, **params})
        assert r.status_code == 200, r.json()
        return list(r.json()["items"])

    def live(self) -> dict[str, Assignment]:
        """Lead id -> its live assignment."""
        with self.session() as s:
            return {a.lead_id: a for a in s.scalars(sa.select(Assignment).where(Assignment.live))}


@contextmanager
def service(db_url: str, folder: Any, *, start: datetime = T0, round_leads: int = 8,
            run_round: bool = True, **settings_overrides: Any) -> Iterator[Service]:
    """A migrated service with the channel above and (``run_round``) a first round at ``start``.

    ``settings_overrides`` are further :class:`Settings` fields (``webhook_allow_private=True``
    for a test whose webhook receiver listens on 127.0.0.1).
    """
    clock = FrozenClock(start)
    settings = Settings(database_url=db_url, model_dir=folder / "models",
                        round_time_limit_s=20, lifecycle_interval_s=None, **settings_overrides)
    app = create_app(settings, clock=clock)
    with TestClient(app) as client:
        svc = Service(app, client, clock, {})
        svc.admin = svc.key("admin")
        assert svc.post("/partners", json={"partners": PARTNERS}).status_code == 200
        for p in PARTNERS:
            svc.partner[p["partner_id"]] = svc.key("partner", p["partner_id"])
        if round_leads:
            leads = [lead(i) for i in range(round_leads)]
            assert svc.post("/leads", json={"leads": leads}).status_code == 200
        if run_round:
            r = svc.post("/rounds", json={"policy": {"toml": POLICY_TOML}})
            assert r.status_code == 201, r.json()
        yield svc


def check_invariants(session: Session) -> None:
    """What must hold after every step of the lifecycle, whatever happened.

    - no lead is live with two partners (the index guarantees it; checked anyway);
    - an ended assignment is never live, a live one is in a live state;
    - a lead holding a live assignment has no open pool entry;
    - each partner's used room in the latest round is the units of its live assignments
      of that round's period.
    """
    live = Counter(session.scalars(sa.select(Assignment.lead_id).where(Assignment.live)))
    assert not live or max(live.values()) == 1, [k for k, v in live.items() if v > 1]
    states = set(session.execute(sa.select(Assignment.state, Assignment.live)).all())
    for state, is_live in states:
        assert is_live == (state not in ("rejected", "expired", "reclaimed")), (state, is_live)
    pooled = set(session.scalars(sa.select(PoolEntry.lead_id)
                                 .where(PoolEntry.closed_at.is_(None))))
    assert not (pooled & set(live)), pooled & set(live)
    latest = latest_round_id(session)
    if latest is None:
        return
    used = dict(session.execute(sa.select(RoundPartner.partner_id, RoundPartner.used_units)
                                .where(RoundPartner.round_id == latest)).all())
    held: dict[str, float] = {}
    for pid, units in session.execute(sa.select(Assignment.partner_id, Assignment.units)
                                      .where(Assignment.live,
                                             Assignment.round_id == latest)):
        held[pid] = held.get(pid, 0.0) + units
    for pid, units in used.items():
        assert abs(units - held.get(pid, 0.0)) < 1e-9, (pid, units, held.get(pid, 0.0))
