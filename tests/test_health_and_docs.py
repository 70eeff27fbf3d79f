"""Health checks and the OpenAPI document."""

import re

import pytest
from openapi_spec_validator import validate

from app import create_app
from tenants.names import slug_problem
from tests.helpers import app_config


def test_healthz_and_readyz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["checks"] == {"database": "ok", "redis": "ok"}


def test_paths_under_api_answer_errors_as_json_even_outside_v1(client):
    for path in ("/api", "/api/", "/api/v2/tickets", "/api/v1"):
        resp = client.get(path)
        assert resp.status_code == 404 and resp.mimetype == "application/json", path
        assert resp.get_json()["code"] == 404


def test_readyz_is_503_when_redis_is_unreachable(services):
    app = create_app(app_config(services, REDIS_URL="redis://127.0.0.1:1/0"))
    ready = app.test_client().get("/readyz")
    assert ready.status_code == 503 and ready.headers["Retry-After"] == "5"
    assert ready.get_json()["checks"]["redis"].startswith("error")


def test_openapi_document_is_valid_and_public(client):
    resp = client.get("/api/v1/openapi.json")
    assert resp.status_code == 200
    spec = resp.get_json()
    validate(spec)
    for path in ("/api/v1/signup", "/api/v1/users", "/api/v1/users/{user_id}", "/api/v1/teams",
                 "/api/v1/teams/{team_id}/members/{user_id}", "/api/v1/api-keys", "/api/v1/tickets"):
        assert path in spec["paths"], path
    assert "bearerAuth" in spec["components"]["securitySchemes"]
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200 and b"/api/v1/docs/assets/swagger-ui-bundle.js" in docs.data
    assert client.get("/api/v1/docs/assets/swagger-ui-bundle.js").status_code == 200


def test_unknown_api_path_is_json_404(client):
    resp = client.get("/api/v1/nothing-here")
    assert resp.status_code == 404
    assert resp.get_json()["code"] == 404


@pytest.mark.parametrize("path", ["/api/v1//tickets", "/api//v1/users", "/api/v1/tickets//", "/api/v1/docs//"])
def test_a_path_with_doubled_slashes_is_not_found_in_json(client, path):
    """Werkzeug redirected these to the merged path with an HTML 308."""
    resp = client.get(path, headers={"Authorization": "Bearer nothing"})
    assert resp.status_code == 404 and resp.get_json()["code"] == 404, (path, resp.status_code, resp.data[:80])


def test_the_document_lists_the_conditional_and_partial_answers_the_server_gives(client):
    """412 on close and reopen, 304 on reads, 206 and 416 on downloads were answered but not listed."""
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]

    def operation(path: str, method: str) -> tuple[set[str], set[str]]:
        op = paths[f"/api/v1{path}"][method]
        return set(op["responses"]), {p["name"] for p in op.get("parameters", [])}

    for path in ("/tickets/{ticket_id}", "/tickets/by-number/{number}"):
        responses, headers = operation(path, "get")
        assert "304" in responses and "If-None-Match" in headers, path
    for path, method in (("/tickets/{ticket_id}", "patch"), ("/tickets/{ticket_id}/close", "post"),
                         ("/tickets/{ticket_id}/reopen", "post")):
        responses, headers = operation(path, method)
        assert "412" in responses and "If-Match" in headers, path
    for path in ("/attachments/{attachment_id}/download", "/attachments/{attachment_id}/thumbnail"):
        responses, headers = operation(path, "get")
        assert {"200", "206", "302", "304", "416"} <= responses and {"Range", "If-None-Match"} <= headers, path


def test_the_document_lists_the_refusals_of_a_malformed_body_or_query(client):
    """A body that is not JSON (400), too large (413) or not sent as JSON (415) are answered on every
    operation with a JSON body, and a query string that is not UTF-8 (400) on every operation."""
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    for path, item in paths.items():
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            if "application/json" in op.get("requestBody", {}).get("content", {}):
                assert {"400", "413", "415"} <= set(op["responses"]), (method, path)
            assert "400" in op["responses"], (method, path)  # any query string may not be UTF-8


def test_every_property_of_the_document_has_a_type(client):
    schemas = client.get("/api/v1/openapi.json").get_json()["components"]["schemas"]
    untyped = [(name, prop) for name, schema in schemas.items() for prop, value in schema.get("properties", {}).items()
               if not {"type", "$ref", "allOf", "anyOf", "oneOf"} & set(value)]
    assert untyped == []


@pytest.mark.parametrize("slug", ["acme", "ab", "ab-cd", "abc--d", "a1-2", "ab--cd", "xn--80ak6aa92e", "pg-x",
                                  "www", "a", "1ab", "Acme", "ab_cd", "a" * 40, "a" * 41])
def test_the_document_refuses_the_slugs_signup_refuses(client, slug):
    """An integrator checking a slug against the document must not be told yes where signup says no."""
    rule = client.get("/api/v1/openapi.json").get_json()["components"]["schemas"]["Signup"]["properties"]["slug"]
    allowed = re.fullmatch(rule["pattern"], slug) is not None and slug not in rule["not"]["enum"]
    assert allowed == (slug_problem(slug) is None), (slug, rule["pattern"])
