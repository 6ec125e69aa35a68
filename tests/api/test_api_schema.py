"""The OpenAPI schema, fuzzed with Schemathesis: no 5xx, and every response as declared."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from api_helpers import make_app
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from taskward.api import TaskwardAPI
from taskward.api.schemas import TaskOut

TOKEN = "fuzz-token"

# Routes installed on a plain FastAPI app: the test client of Schemathesis would run a
# lifespan around every single request (the routes open the store on their own).
_api = FastAPI()
TaskwardAPI(make_app(), token=TOKEN).install(_api)
# The events route streams forever: it is exercised over real HTTP in tests/e2e.
schema = schemathesis.openapi.from_asgi("/openapi.json", _api).exclude(path="/api/events")

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(case: schemathesis.Case[Any]) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=CHECKS)


def test_every_api_operation_declares_401_and_every_error_has_a_body() -> None:
    for path, operations in _api.openapi()["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if path.startswith("/api/"):
                assert "401" in responses, (method, path)
            for code, response in responses.items():
                if code.startswith(("4", "5")):
                    assert "application/json" in response["content"], (method, path, code)


def test_task_out_documents_to_json() -> None:
    documented: dict[str, Any] = _api.openapi()["components"]["schemas"]["TaskOut"]
    assert set(documented["properties"]) == set(TaskOut.model_fields)


@pytest.mark.parametrize("code", ["401", "413", "422", "409", "503"])
def test_submit_declares_its_errors(code: str) -> None:
    responses = _api.openapi()["paths"]["/api/tasks"]["post"]["responses"]
    assert code in responses
