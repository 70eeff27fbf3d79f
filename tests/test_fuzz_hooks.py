"""The fuzzer's hooks (`tests/fuzz_hooks.py`) on the cases that made them necessary."""

from types import SimpleNamespace

from app.schemas import parse_uuid
from tests import fuzz_hooks


def _parameter(name: str, schema: dict) -> SimpleNamespace:
    return SimpleNamespace(name=name, definition={"in": "query", "name": name, "schema": schema})


def test_an_id_parameter_a_stateful_step_filled_with_a_number_gets_an_id_of_nothing():
    # Seen in a run: an audit event's number, from GET /audit-events, as a delivery list's event_id.
    known = "5dfebb8d-b66e-49ca-8f24-29e7dba80212"
    uuid_schema = {"type": "string", "format": "uuid"}
    case = SimpleNamespace(
        operation=SimpleNamespace(
            path_parameters=[_parameter("webhook_id", uuid_schema)],
            query=[_parameter("event_id", uuid_schema), _parameter("entity_id", uuid_schema),
                   _parameter("status", {"type": "string"})]),
        path_parameters={"webhook_id": known},
        query={"event_id": 506, "entity_id": f"{known}\n", "status": "506"})
    fuzz_hooks._ids_in_id_parameters(case)
    assert case.path_parameters == {"webhook_id": known}
    assert parse_uuid(case.query["event_id"]) and parse_uuid(case.query["entity_id"])
    assert case.query["entity_id"] != known
    assert case.query["status"] == "506"
