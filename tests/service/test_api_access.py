"""Who may call what: every route of the app, with every role and with no key.

The routes are read from the app itself, so a route added later is tested (and
refused, until it is given a line in ``deps.ACCESS``) without editing this file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.api.deps import ACCESS, PUBLIC
from service.db.keys import create_key, revoke_key
from service.db.tables import Assignment
from service.settings import Settings
from tests.service.api_support import POLICY_TOML, channel, rows
from tests.service.conftest import BACKENDS, copied_database

ROLES = [None, "admin", "analyst", "viewer", "partner"]
ROUTES = sorted(
    (method, str(route.path))
    for route in iter_route_contexts(create_app(Settings(database_url="sqlite://")).routes)
    if isinstance(route.original_route, APIRoute)
    for method in route.methods or ()
)


@dataclass
class World:
    client: TestClient
    keys: dict[str | None, dict[str, str]]
    ids: dict[str, str]
    own: str
    other: str
    others: list[str] = field(default_factory=list)


def _key(client: TestClient, role: str, partner_id: str | None = None) -> dict[str, str]:
    with client.app.state.sessionmaker() as session:  # type: ignore[attr-defined]
        new = create_key(session, role, partner_id=partner_id)
        session.commit()
    return {"X-API-Key": new.token}


@pytest.fixture(scope="module", params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[World]:
    folder: Path = tmp_path_factory.mktemp("access")
    with copied_database(request, request.param, folder) as url:
        # webhook_allow_private: the subscription below names a local URL (nothing is sent)
        app = create_app(Settings(database_url=url, model_dir=folder / "models",
                                  lifecycle_interval_s=None, webhook_allow_private=True))
        with TestClient(app) as client:
            admin = _key(client, "admin")
            ch = channel()
            client.post("/partners", headers=admin, json={"partners": rows(ch.partners)})
            client.post("/leads", headers=admin, json={"leads": rows(ch.leads)})
            rnd = client.post("/rounds", headers=admin, json={"policy": {"toml": POLICY_TOML}})
            assert rnd.status_code == 201, rnd.json()
            items = client.get("/assignments", headers=admin, params={"limit": 1000}).json()
            by_partner: dict[str, list[dict[str, object]]] = {}
            for a in items["items"]:
                by_partner.setdefault(str(a["partner_id"]), []).append(a)
            own, other = sorted(by_partner, key=lambda p: (-len(by_partner[p]), p))[:2]
            keys: dict[str | None, dict[str, str]] = {
                None: {}, "admin": admin, "analyst": _key(client, "analyst"),
                "viewer": _key(client, "viewer"), "partner": _key(client, "partner", own)}
            mine = by_partner[own][0]
            hook = client.post("/webhooks", headers=keys["partner"],
                               json={"url": "http://127.0.0.1:9/hooks", "events": ["lead_won"]})
            assert hook.status_code == 201, hook.json()
            ids = {"partner_id": own, "lead_id": str(mine["lead_id"]), "policy_id": "1",
                   "round_id": str(rnd.json()["id"]), "assignment_id": str(mine["id"]),
                   "version": "v0001", "subscription_id": str(hook.json()["id"])}
            others = [p for p in ch.partners["partner_id"] if p != own]
            yield World(client, keys, ids, own, other, others)


def test_the_access_table_names_every_route_and_only_routes() -> None:
    routes = set(ROUTES)
    assert routes - PUBLIC == set(ACCESS), "every route needs a line in deps.ACCESS"
    assert routes >= PUBLIC


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r or "no-key")
@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_every_route_checks_key_and_role(world: World, method: str, path: str,
                                         role: str | None) -> None:
    r = world.client.request(method, path.format(**world.ids), headers=world.keys[role])
    if (method, path) in PUBLIC:
        assert r.status_code == 200
        return
    if role is None:
        assert r.status_code == 401
        assert "X-API-Key" in r.json()["detail"]
    elif role in ACCESS[(method, path)]:
        assert r.status_code not in (401, 403), r.json()
        assert r.status_code < 500
    else:
        assert r.status_code == 403
        assert role in r.json()["detail"]


def test_bad_and_revoked_keys_are_refused(world: World) -> None:
    for token in ("nonsense", "flk_zz_abc", "flk_0123456789ab_guess", ""):
        r = world.client.get("/me", headers={"X-API-Key": token})
        assert r.status_code == 401
    headers = _key(world.client, "viewer")
    assert world.client.get("/me", headers=headers).json()["role"] == "viewer"
    key_id = headers["X-API-Key"].split("_")[1]
    with world.client.app.state.sessionmaker() as session:  # type: ignore[attr-defined]
        revoke_key(session, key_id)
        session.commit()
    assert world.client.get("/me", headers=headers).status_code == 401


def _partner_gets(world: World) -> list[str]:
    return [p.format(**world.ids) for m, p in ROUTES
            if m == "GET" and "partner" in ACCESS.get((m, p), ())]


def test_a_partner_reads_only_its_own_data(world: World) -> None:
    client, key, admin = world.client, world.keys["partner"], world.keys["admin"]
    assert client.get("/me", headers=key).json()["partner_id"] == world.own
    mine = client.get("/assignments", headers=key, params={"limit": 1000}).json()
    everyone = client.get("/assignments", headers=admin, params={"limit": 1000}).json()
    expected = {a["id"] for a in everyone["items"] if a["partner_id"] == world.own}
    assert {a["id"] for a in mine["items"]} == expected and mine["total"] == len(expected)

    theirs = next(a for a in everyone["items"] if a["partner_id"] == world.other)
    for path in (f"/assignments/{theirs['id']}", f"/assignments/{theirs['id']}/explanation"):
        assert client.get(path, headers=key).status_code == 404
    for path, params in (("/assignments", {"partner_id": world.other}),
                         (f"/rounds/{world.ids['round_id']}/assignments",
                          {"partner_id": world.other}),
                         ("/audit", {"partner_id": world.other}),
                         (f"/partners/{world.other}", {})):
        assert client.get(path, headers=key, params=params).status_code == 403, path
    log = client.get("/audit", headers=key, params={"limit": 1000}).json()
    assert log["total"] > 0 and {e["partner_id"] for e in log["items"]} == {world.own}

    # No answer a partner can get names another partner, even in a reason.
    pattern = re.compile("|".join(rf"(?<![\w-]){re.escape(p)}(?![\w-])" for p in world.others))
    for path in _partner_gets(world):
        r = client.get(path, headers=key, params={"limit": 1000})
        assert r.status_code == 200, (path, r.json())
        assert not pattern.search(json.dumps(r.json())), path


def test_contact_details_only_after_accepting(world: World) -> None:
    client, key = world.client, world.keys["partner"]
    # (the access matrix test may have accepted one offer: it shows its contact, rightly)
    offered = [a for a in client.get("/assignments", headers=key,
                                     params={"limit": 1000}).json()["items"]
               if a["state"] == "offered"]
    assert offered and all(a["lead"]["contact"] is None for a in offered)
    assert all("accepted" in a["lead"]["contact_withheld"] for a in offered)
    analyst = client.get("/assignments", headers=world.keys["analyst"]).json()["items"]
    assert all(a["lead"]["contact"] is None for a in analyst)
    assert client.get(f"/leads/{world.ids['lead_id']}",
                      headers=world.keys["analyst"]).json()["contact"] is None

    accepted_id = int(world.ids["assignment_id"])
    with client.app.state.sessionmaker() as session:  # type: ignore[attr-defined]
        session.execute(sa.update(Assignment).where(Assignment.id == accepted_id)
                        .values(state="accepted"))
        session.commit()
    try:
        seen = client.get(f"/assignments/{accepted_id}", headers=key).json()
        assert seen["lead"]["contact"]["contact_email"]
        still = [a for a in client.get("/assignments", headers=key,
                                       params={"limit": 1000}).json()["items"]
                 if a["id"] != accepted_id and a["state"] == "offered"]
        assert all(a["lead"]["contact"] is None for a in still)
    finally:
        with client.app.state.sessionmaker() as session:  # type: ignore[attr-defined]
            session.execute(sa.update(Assignment).where(Assignment.id == accepted_id)
                            .values(state="offered"))
            session.commit()


def test_reasons_shown_to_a_partner_never_name_a_competitor() -> None:
    from service.api.views import redact_partners

    reason = ("P7 had a higher score (0.41) but its capacity of 3 was full "
              "(cap[partner=P7] is worth 0.2); partner 'P12' was 2nd; P1 got it")
    shown = redact_partners(reason, "P1", ["P7", "P12"])
    assert "P7" not in shown and "P12" not in shown
    assert shown.startswith("another partner had a higher score")
    assert shown.endswith("P1 got it")
    assert redact_partners("P1 is the only eligible partner", "P1", []) == (
        "P1 is the only eligible partner")
