"""End to end over HTTP: ingest a simulated channel, run rounds, read reasons, fairness, audit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from service.api.app import create_app
from service.settings import Settings
from tests.service.api_support import INFEASIBLE_TOML, POLICY_TOML, channel, rows


def _ingest(client: TestClient, headers: dict[str, str]) -> None:
    ch = channel()
    for path, key, frame in (("/partners", "partners", ch.partners),
                             ("/leads", "leads", ch.leads)):
        r = client.post(path, headers=headers, json={key: rows(frame)})
        assert r.status_code == 200, r.json()


def _all(client: TestClient, headers: dict[str, str], path: str,
         **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        page = client.get(path, headers=headers,
                          params={**params, "offset": len(items), "limit": 7}).json()
        items += page["items"]
        if len(items) >= page["total"]:
            return items


def _counts(client: TestClient, headers: dict[str, str]) -> tuple[int, int, int, int]:
    return (client.get("/rounds", headers=headers).json()["total"],
            client.get("/assignments", headers=headers).json()["total"],
            client.get("/policies", headers=headers).json()["total"],
            client.get("/audit", headers=headers).json()["total"])


def test_a_round_end_to_end(client: TestClient, admin: dict[str, str]) -> None:
    _ingest(client, admin)
    stored = client.post("/policies", headers=admin, json={"toml": POLICY_TOML})
    assert stored.status_code == 201 and stored.json()["created"] is True
    same = client.post("/policies", headers=admin, json={"toml": POLICY_TOML + "\n# comment\n"})
    assert same.status_code == 200 and same.json()["id"] == stored.json()["id"]
    policy_id = stored.json()["id"]

    r = client.post("/rounds", headers=admin, json={"policy_id": policy_id})
    assert r.status_code == 201, r.json()
    rnd = r.json()
    assert rnd["policy_hash"] == stored.json()["content_hash"]
    assert rnd["status"] in ("optimal", "feasible")
    assert rnd["n_leads"] == 60 and rnd["n_assigned"] > 0
    assert rnd["summary"]["counts"]["assigned"] == rnd["n_assigned"]
    assert rnd["summary"]["policy"]["id"] == policy_id

    assignments = _all(client, admin, f"/rounds/{rnd['id']}/assignments")
    assert len(assignments) == rnd["n_assigned"]
    assert all(a["reason"] and a["state"] == "offered" and a["live"] for a in assignments)
    assert all(a["lead"]["contact"] is not None for a in assignments)  # admins see contacts
    assert len({a["lead_id"] for a in assignments}) == len(assignments)
    by_partner = {a["partner_id"] for a in assignments}
    some = sorted(by_partner)[0]
    mine = _all(client, admin, f"/rounds/{rnd['id']}/assignments", partner_id=some)
    assert mine and {a["partner_id"] for a in mine} == {some}
    tier = assignments[0]["tier"]
    of_tier = _all(client, admin, f"/rounds/{rnd['id']}/assignments", tier=tier)
    assert of_tier and {a["tier"] for a in of_tier} == {tier}

    explained = client.get(f"/assignments/{assignments[0]['id']}/explanation", headers=admin)
    assert explained.status_code == 200
    body = explained.json()
    assert body["rank"] >= 1 and body["explanation"]["n_eligible"] >= 1
    assert body["reason"] == assignments[0]["reason"]

    fairness = client.get(f"/rounds/{rnd['id']}/fairness", headers=admin).json()
    assert "gini_leads" in str(fairness["fairness"]) or fairness["fairness"]
    assert {p["partner_id"] for p in fairness["partners"]} >= by_partner

    offered = _all(client, admin, "/audit", round_id=rnd["id"], action="assignment.offered")
    assert {(e["lead_id"], e["partner_id"]) for e in offered} == {
        (a["lead_id"], a["partner_id"]) for a in assignments}
    assert all(e["reason"] and e["actor_role"] == "admin" for e in offered)
    completed = _all(client, admin, "/audit", action="round.completed")
    assert [e["round_id"] for e in completed] == [rnd["id"]]

    # Re-ingesting the same leads changes nothing; the next round sees only leads still free.
    again = client.post("/leads", headers=admin, json={"leads": rows(channel().leads)}).json()
    assert (again["created"], again["unchanged"]) == (0, 60)
    second = client.post("/rounds", headers=admin, json={"policy_id": policy_id})
    assert second.status_code == 201
    assert second.json()["n_leads"] == 60 - rnd["n_assigned"]
    taken = {a["lead_id"] for a in assignments}
    later = _all(client, admin, f"/rounds/{second.json()['id']}/assignments")
    assert not taken & {a["lead_id"] for a in later}
    listed = client.get("/rounds", headers=admin).json()
    assert [x["id"] for x in listed["items"]] == [second.json()["id"], rnd["id"]]


def test_an_infeasible_round_is_a_409_and_leaves_no_trace(
    client: TestClient, admin: dict[str, str]
) -> None:
    _ingest(client, admin)
    before = _counts(client, admin)
    r = client.post("/rounds", headers=admin, json={"policy": {"toml": INFEASIBLE_TOML}})
    assert r.status_code == 409
    body = r.json()
    assert body["rules"] and body["conflicts"]
    assert any(rule.startswith(("tier_share[", "floor[", "quota[")) for rule in body["rules"])
    assert "infeasible" in body["detail"]
    assert _counts(client, admin) == before  # no round, assignment, policy or audit entry


def test_round_input_errors(client: TestClient, admin: dict[str, str]) -> None:
    none = client.post("/rounds", headers=admin, json={"policy": {"toml": POLICY_TOML}})
    assert none.status_code == 409 and "No lead is waiting" in none.json()["detail"]
    _ingest(client, admin)
    bad_policy = client.post("/rounds", headers=admin,
                             json={"policy": {"body": {"fairness": {"partner_flor": 2}}}})
    assert bad_policy.status_code == 422
    assert "did you mean 'partner_floor'" in bad_policy.json()["problems"][0]["rule"]
    unknown = client.post("/rounds", headers=admin, json={"policy_id": 99})
    assert unknown.status_code == 404
    ids = client.post("/rounds", headers=admin,
                      json={"policy": {"toml": POLICY_TOML}, "lead_ids": ["L0000001", "ZZ"]})
    assert ids.status_code == 422
    assert ids.json()["problems"][0]["value"] == "ZZ"
    # Stored partners are checked against the round's policy: a tier it does not name.
    tiers_only_gold = POLICY_TOML.split("[tiers.platinum]")[0] + "[tiers.gold]\n"
    tiers_only_gold += '[pool]\ncascade = ["gold"]\n'
    wrong = client.post("/rounds", headers=admin, json={"policy": {"toml": tiers_only_gold}})
    assert wrong.status_code == 422
    assert {p["column"] for p in wrong.json()["problems"]} == {"tier"}
    assert wrong.json()["problems"][0]["file"] == "stored partners"


def test_requested_leads_already_assigned_are_a_409(
    client: TestClient, admin: dict[str, str]
) -> None:
    _ingest(client, admin)
    first = client.post("/rounds", headers=admin, json={"policy": {"toml": POLICY_TOML}}).json()
    taken = _all(client, admin, f"/rounds/{first['id']}/assignments")[0]["lead_id"]
    r = client.post("/rounds", headers=admin,
                    json={"policy": {"toml": POLICY_TOML}, "lead_ids": [taken]})
    assert r.status_code == 409
    assert r.json()["ids"] == [taken]
    assert f"round {first['id']}" in r.json()["detail"]


def test_unknown_ids_are_404(client: TestClient, admin: dict[str, str]) -> None:
    for path in ("/rounds/999", "/rounds/999/fairness", "/rounds/999/assignments",
                 "/assignments/999", "/assignments/999/explanation", "/policies/999",
                 "/partners/NOPE", "/leads/NOPE"):
        r = client.get(path, headers=admin)
        assert r.status_code == 404, path
        assert r.json()["detail"].startswith("No "), path
    promote = client.post("/models/v0009/promote", headers=admin)
    assert promote.status_code == 404


def test_health_reports_database_and_model(client: TestClient) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["database"]["ok"]
    assert body["database"]["revision"] == body["database"]["expected_revision"]
    assert body["model"]["loaded"] is False
    assert "no model registry" in body["model"]["detail"]


def test_health_is_503_when_the_database_is_unusable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing-dir' / 'fairlead.db'}"
    app = create_app(Settings(database_url=url, model_dir=tmp_path, migrate_on_start=False,
                              lifecycle_interval_s=None))
    with TestClient(app) as c:
        r = c.get("/health")
    assert r.status_code == 503
    assert r.json()["status"] == "unavailable"
    assert "database unreachable" in r.json()["database"]["detail"]
