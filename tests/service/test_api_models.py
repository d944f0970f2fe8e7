"""Model versions over HTTP: train from stored outcomes, list, promote; rounds score with it."""

from __future__ import annotations

from fastapi.testclient import TestClient

from service.api.app import create_app
from service.settings import Settings
from tests.service.api_support import POLICY_TOML, channel, rows


def test_train_promote_and_score_rounds_with_the_promoted_version(
    client: TestClient, admin: dict[str, str], settings: Settings
) -> None:
    ch = channel()
    client.post("/partners", headers=admin, json={"partners": rows(ch.partners)})
    client.post("/leads", headers=admin, json={"leads": rows(ch.leads)})
    too_few = client.post("/models", headers=admin, json={})
    assert too_few.status_code == 422
    assert client.get("/models", headers=admin).json() == []

    client.post("/history", headers=admin, json={"history": rows(ch.history)[:300]})
    first = client.post("/models", headers=admin, json={"exclude": ["contact_email"]})
    assert first.status_code == 201, first.json()
    v1 = first.json()
    assert v1["version"] == "v0001" and v1["promoted"] is True  # a registry's first version
    assert {"auc", "log_loss", "brier", "ece"} <= set(v1["metrics"])
    health = client.get("/health").json()["model"]
    assert health == {"loaded": True, "version": "v0001", "detail": health["detail"]}

    second = client.post("/models", headers=admin, json={}).json()
    assert second["version"] == "v0002" and second["promoted"] is False
    listed = client.get("/models", headers=admin).json()
    assert [(m["version"], m["promoted"]) for m in listed] == [("v0001", True), ("v0002", False)]

    # Another worker, started before the promotion, scores with the new version too.
    with TestClient(create_app(settings)) as other:
        assert other.get("/health").json()["model"]["version"] == "v0001"
        promoted = client.post("/models/v0002/promote", headers=admin)
        assert promoted.status_code == 200 and promoted.json()["promoted"] is True
        r = other.post("/rounds", headers=admin, json={"policy": {"toml": POLICY_TOML}})
        assert r.status_code == 201, r.json()
        assert r.json()["model_version"] == "v0002"
        assert "v0002" in r.json()["summary"]["scores_source"]
    log = client.get("/audit", headers=admin, params={"action": "model.promoted"}).json()
    assert [(e["entity_id"], e["detail"]["previous"]) for e in log["items"]] == [
        ("v0002", "v0001")]
