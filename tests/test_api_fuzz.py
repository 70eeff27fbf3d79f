"""Fuzz every operation in the OpenAPI document with generated input: never a 500.

schemathesis derives valid and edge-case requests from our own spec; each operation gets a few
examples, authenticated as a tenant admin. The examples are derandomized so that every run (and
CI) checks the same requests; set FUZZ_EXAMPLES to explore more, with fresh random examples.
"""

import os

import schemathesis
from hypothesis import HealthCheck, given, settings

EXPLORE = os.environ.get("FUZZ_EXAMPLES")
EXAMPLES = int(EXPLORE or 10)


def test_no_operation_answers_500(app, make_tenant):
    tenant = make_tenant()
    headers = {"Authorization": f"Bearer {tenant.key}"}
    tenant.api.post("/api/v1/tickets", json={"title": "something to find", "description": "printer"})
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    server_errors = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, derandomize=EXPLORE is None, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def call(case) -> None:
            response = case.call(headers=headers)
            if response.status_code >= 500:
                server_errors.append(f"{case.method} {case.formatted_path} {case.query} {case.body!r:.200}: "
                                     f"{response.status_code} {response.text[:200]}")

        call()
    assert server_errors == []
