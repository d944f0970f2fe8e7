"""Schemathesis over the whole OpenAPI schema: no request, however malformed, is a 5xx.

Valid and invalid requests are generated from the schema the app publishes
(a bounded, deterministic number per operation and mode), sent with an admin
key to a database holding a small channel and a round, and every answer is
checked: not a server error, and documented (status code, content type and
body as the schema says).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from fastapi.testclient import TestClient
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.api.app import create_app
from service.db.keys import create_key
from service.settings import Settings
from tests.service.api_support import POLICY_TOML, channel, rows
from tests.service.conftest import BACKENDS, copied_database

MAX_EXAMPLES = 10
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
OPERATIONS = sorted(
    (method.upper(), path)
    for path, item in create_app(Settings(database_url="sqlite://")).openapi()["paths"].items()
    for method in item
)


@dataclass
class Target:
    schema: Any
    headers: dict[str, str]


@pytest.fixture(scope="module", params=BACKENDS)
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Target]:
    folder: Path = tmp_path_factory.mktemp("fuzz")
    with copied_database(request, request.param, folder) as url:
        settings = Settings(database_url=url, model_dir=folder / "models", round_time_limit_s=2,
                            lifecycle_interval_s=None)
        app = create_app(settings)
        with TestClient(app) as client:
            with app.state.sessionmaker() as session:
                headers = {"X-API-Key": create_key(session, "admin").token}
                session.commit()
            ch = channel()
            client.post("/partners", headers=headers, json={"partners": rows(ch.partners)})
            client.post("/leads", headers=headers, json={"leads": rows(ch.leads)})
            client.post("/history", headers=headers, json={"history": rows(ch.history)[:20]})
            r = client.post("/rounds", headers=headers, json={"policy": {"toml": POLICY_TOML}})
            assert r.status_code == 201
            schema = schemathesis.openapi.from_asgi("/openapi.json", app)
            yield Target(schema, headers)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_request_is_a_server_error(target: Target, method: str, path: str) -> None:
    operation = target.schema[path][method]
    for mode in MODES:

        @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis.settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                             derandomize=True, suppress_health_check=list(hypothesis.HealthCheck))
        def check(case: schemathesis.Case) -> None:
            response = case.call(headers=target.headers)
            case.validate_response(response, checks=CHECKS)

        try:
            check()
        except hypothesis.errors.Unsatisfiable:
            # Nothing can be wrong in a request without parameters or body (GET /health).
            assert mode is schemathesis.GenerationMode.NEGATIVE
