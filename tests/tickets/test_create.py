"""Creating tickets: numbering under concurrency, the recorded events, bad input, idempotency."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest
import sqlalchemy as sa

from app.auth.actor import Actor
from app.idempotency import IdempotencyRecord
from app.tickets import services
from tests.helpers import new_ticket as open_ticket
from tests.servers import start_gunicorn, stop_gunicorn


def test_create_returns_the_contract_fields(tenant, new_ticket):
    ticket = new_ticket("Printer on fire", description="toner", priority="urgent", category="hardware",
                        tags=["hw", "fire", "hw"])
    assert ticket["number"] == 1
    assert ticket["status"] == "new"
    assert ticket["tags"] == ["fire", "hw"]
    assert ticket["requester_id"] == tenant.admin_id
    assert ticket["assignee_id"] is None and ticket["team_id"] is None and ticket["closed_at"] is None
    assert ticket["created_at"].endswith("+00:00")


def test_create_answers_with_an_etag(tenant):
    resp = tenant.api.post("/api/v1/tickets", json={"title": "x"})
    assert resp.headers["ETag"] == '"v1"'


def test_numbers_count_up_per_tenant(tenant, other_tenant, new_ticket):
    assert [new_ticket(f"t{i}")["number"] for i in range(3)] == [1, 2, 3]
    other = other_tenant.api.post("/api/v1/tickets", json={"title": "elsewhere"}).get_json()
    assert other["number"] == 1


def test_concurrent_creates_get_distinct_gapless_numbers(app, tenant):
    threads, per_thread = 8, 6
    barrier = threading.Barrier(threads)
    numbers: list[int] = []
    failures: list[object] = []
    lock = threading.Lock()

    def create() -> None:
        client = app.test_client()
        barrier.wait()
        for i in range(per_thread):
            resp = client.post("/api/v1/tickets", json={"title": f"race {i}"},
                               headers={"Authorization": f"Bearer {tenant.key}"})
            with lock:
                (numbers.append(resp.get_json()["number"]) if resp.status_code == 201
                 else failures.append(resp.get_json()))

    workers = [threading.Thread(target=create) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert failures == []
    assert sorted(numbers) == list(range(1, threads * per_thread + 1))


def test_a_number_is_never_reused_even_after_a_rollback(tenant, in_tenant, new_ticket):
    with in_tenant(tenant) as session:
        actor = Actor(user_id=uuid.UUID(tenant.admin_id), role="admin")
        assert services.create_ticket(actor, title="abandoned").number == 1
        session.rollback()
    assert new_ticket("kept")["number"] == 2


def test_a_create_takes_only_the_fields_a_create_declares(tenant, in_tenant):
    """The page's and the seed's path passes fields on as they come: the ticket's own (status, number,
    assignee ...) are never a create's to set, whoever calls it."""
    with in_tenant(tenant):
        actor = Actor(user_id=uuid.UUID(tenant.admin_id), role="admin")
        for field, value in (("status", "closed"), ("number", 4242), ("assignee_id", uuid.uuid4())):
            with pytest.raises(TypeError, match=field):
                services.create_ticket(actor, title="sneaky", **{field: value})


def test_create_writes_audit_and_the_created_event(tenant, new_ticket, recorded_events, audit_entries):
    ticket = new_ticket("Audited")
    assert recorded_events(tenant) == [("ticket.created", {"ticket_id": ticket["id"]})]
    entries = audit_entries(tenant, ticket["id"])
    assert [(e.action, e.after["title"], str(e.actor_id)) for e in entries] == [
        ("created", "Audited", tenant.admin_id)]


def test_requester_creates_for_themselves_only(tenant, new_ticket, table_counts):
    """Naming someone else is a request the role may not make (403, nothing stored), not a quiet change."""
    requester = tenant.user("requester")
    other = tenant.user("requester")
    api = tenant.key_for(requester)
    counts = table_counts(tenant)
    for someone in (other["id"], tenant.admin_id, str(uuid.uuid4())):
        refused = api.post("/api/v1/tickets", json={"title": "mine", "requester_id": someone})
        assert refused.status_code == 403, refused.get_json()
        assert refused.get_json()["message"] == "Requesters may open tickets for themselves only."
    assert table_counts(tenant) == counts
    assert new_ticket("mine", api=api, requester_id=requester["id"])["requester_id"] == requester["id"]
    assert new_ticket("mine too", api=api)["requester_id"] == requester["id"]


def test_staff_create_on_behalf_of_a_requester(tenant, new_ticket):
    requester = tenant.user("requester")
    assert new_ticket("for them", requester_id=requester["id"])["requester_id"] == requester["id"]


@pytest.mark.parametrize(("body", "field"), [
    ({"title": "x" * 201}, "title"),
    ({"title": ""}, "title"),
    ({"title": "   "}, "title"),
    ({"title": "\n\t"}, "title"),
    ({}, "title"),
    ({"title": "x", "description": "d" * (64 * 1024 + 1)}, "description"),
    ({"title": "x", "description": "é" * (32 * 1024 + 1)}, "description"),
    ({"title": "x", "priority": "whenever"}, "priority"),
    ({"title": "x", "status": "closed"}, "status"),
    ({"title": "x", "number": 7}, "number"),
    ({"title": "x", "bogus": 1}, "bogus"),
    ({"title": "x", "tags": "not-a-list"}, "tags"),
    ({"title": "x", "tags": ["y" * 65]}, "tags.0"),
    ({"title": "x", "requester_id": "not-a-uuid"}, "requester_id"),
    ({"title": "x", "requester_id": str(uuid.uuid4())}, "requester_id"),
])
def test_bad_create_answers_422_naming_the_field_and_writes_nothing(tenant, table_counts, body, field):
    """Bad values, and a well-formed id of nobody, answer 422 naming the field."""
    before = table_counts(tenant)
    resp = tenant.api.post("/api/v1/tickets", json=body)
    assert resp.status_code == 422, resp.get_json()
    assert field in resp.get_json()["errors"]
    assert table_counts(tenant) == before


def test_description_of_exactly_64_kib_is_accepted(tenant, new_ticket):
    assert len(new_ticket("big", description="d" * 64 * 1024)["description"]) == 64 * 1024


def test_malformed_json_answers_400_and_writes_nothing(tenant, table_counts):
    before = table_counts(tenant)
    resp = tenant.api.client.post("/api/v1/tickets", data='{"title": "x"', content_type="application/json",
                                  headers={"Authorization": f"Bearer {tenant.key}"})
    assert resp.status_code == 400
    assert resp.get_json()["code"] == 400
    assert table_counts(tenant) == before


def test_a_number_after_a_refused_create_has_no_gap(tenant, new_ticket):
    new_ticket("one")
    assert tenant.api.post("/api/v1/tickets", json={"title": "x", "priority": "nope"}).status_code == 422
    assert new_ticket("two")["number"] == 2


# --- idempotency -------------------------------------------------------------------------------

def _post(api, body, key):
    return api.post("/api/v1/tickets", json=body, headers={"Idempotency-Key": key})


def test_a_row_the_database_changed_is_answered_as_stored_and_replayed_so(app, tenant):
    """The body is made before the INSERT; should the row come back otherwise (here a trigger of the
    schema's, as a database-side default would), the answer and the stored response are the row's."""
    from app.extensions import db
    from tenants import active_tenant

    with app.app_context():
        schema = active_tenant(tenant.slug).schema_name
        db.session.execute(sa.text(
            f'CREATE FUNCTION "{schema}".shout() RETURNS trigger LANGUAGE plpgsql AS '
            "$$ BEGIN NEW.title := upper(NEW.title); NEW.version := 5; RETURN NEW; END $$"))
        db.session.execute(sa.text(f'CREATE TRIGGER shout BEFORE INSERT ON "{schema}".tickets '
                                   f'FOR EACH ROW EXECUTE FUNCTION "{schema}".shout()'))
        db.session.commit()
    try:
        first = _post(tenant.api, {"title": "quiet"}, "shouted")
        again = _post(tenant.api, {"title": "quiet"}, "shouted")
    finally:
        with app.app_context():
            db.session.execute(sa.text(f'DROP FUNCTION "{schema}".shout() CASCADE'))
            db.session.commit()
    assert first.status_code == again.status_code == 201
    assert first.get_json()["title"] == "QUIET" and first.headers["ETag"] == '"v5"'
    assert again.data == first.data and again.headers["ETag"] == first.headers["ETag"]
    assert again.headers["Idempotent-Replayed"] == "true"
    read = tenant.api.get(f"/api/v1/tickets/{first.get_json()['id']}")
    assert read.get_json() == first.get_json() and read.headers["ETag"] == first.headers["ETag"]


def test_same_key_and_body_replays_the_first_response(tenant, table_counts):
    first = _post(tenant.api, {"title": "once", "tags": ["a", "b"]}, "key-1")
    counts = table_counts(tenant)
    again = _post(tenant.api, {"tags": ["a", "b"], "title": "once"}, "key-1")
    assert first.status_code == again.status_code == 201
    assert again.data == first.data  # byte for byte, not the same JSON written again
    assert again.headers["ETag"] == first.headers["ETag"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert table_counts(tenant) == counts


def test_a_replay_of_any_operation_is_byte_identical_and_keeps_one_key_row(tenant, in_tenant):
    user = {"email": "k@example.com", "name": "Kay", "role": "agent"}
    first = tenant.api.post("/api/v1/users", json=user, headers={"Idempotency-Key": "u-1"})
    again = tenant.api.post("/api/v1/users", json=user, headers={"Idempotency-Key": "u-1"})
    assert first.status_code == again.status_code == 201 and again.data == first.data
    with in_tenant(tenant) as session:
        assert session.execute(sa.select(sa.func.count()).select_from(IdempotencyRecord)
                               .where(IdempotencyRecord.key == "u-1")).scalar_one() == 1


def test_a_key_expiring_between_the_create_and_its_replay_read_creates_rather_than_409(tenant, in_tenant,
                                                                                        monkeypatch):
    """The create saw the key kept, and the read of its response, a moment later, found it expired: the
    request was answered 409 "in progress" though nothing was. It is free now, so it is claimed again."""
    from app import idempotency
    from app.tickets import writes

    first = _post(tenant.api, {"title": "edge"}, "edge-1")
    with in_tenant(tenant) as session:
        session.execute(sa.update(IdempotencyRecord).where(IdempotencyRecord.key == "edge-1").values(
            created_at=sa.func.now() - sa.text("interval '24 hours'") + sa.text("interval '1 second'")))
        session.commit()
    read = idempotency.stored_response

    def late(conn, claim):
        time.sleep(1.2)  # the key's 24 hours run out meanwhile
        return read(conn, claim)

    monkeypatch.setattr(idempotency, "stored_response", late)
    monkeypatch.setattr(writes, "stored_response", late, raising=False)
    again = _post(tenant.api, {"title": "edge"}, "edge-1")
    assert again.status_code == 201 and "Idempotent-Replayed" not in again.headers, again.get_json()
    assert again.get_json()["number"] == first.get_json()["number"] + 1
    replayed = _post(tenant.api, {"title": "edge"}, "edge-1")
    assert replayed.data == again.data and replayed.headers["Idempotent-Replayed"] == "true"


def test_keys_belong_to_their_tenant(tenant, other_tenant):
    mine = _post(tenant.api, {"title": "same"}, "shared-across")
    theirs = _post(other_tenant.api, {"title": "same"}, "shared-across")
    assert mine.status_code == theirs.status_code == 201
    assert "Idempotent-Replayed" not in theirs.headers and theirs.get_json()["id"] != mine.get_json()["id"]


def test_same_key_with_another_body_answers_422(tenant, table_counts):
    _post(tenant.api, {"title": "once"}, "key-2")
    counts = table_counts(tenant)
    resp = _post(tenant.api, {"title": "twice"}, "key-2")
    assert resp.status_code == 422  # the IETF Idempotency-Key draft: the key was used for another request
    assert "Idempotency-Key" in resp.get_json()["errors"]
    assert table_counts(tenant) == counts


def test_a_replay_takes_no_ticket_number(tenant):
    """Numbers are unique and increasing with no reuse; a replay drawing one left a gap after each retry."""
    first = _post(tenant.api, {"title": "once"}, "numbered").get_json()["number"]
    assert _post(tenant.api, {"title": "once"}, "numbered").headers["Idempotent-Replayed"] == "true"
    assert _post(tenant.api, {"title": "other"}, "numbered").status_code == 422
    assert open_ticket(tenant.api, "next")["number"] == first + 1


def test_keys_belong_to_the_api_key_that_used_them(tenant):
    other = tenant.key_for(tenant.user("agent"))
    a = _post(tenant.api, {"title": "same"}, "shared")
    b = _post(other, {"title": "same"}, "shared")
    assert a.get_json()["id"] != b.get_json()["id"]


def test_a_failed_request_does_not_burn_its_key(tenant):
    assert _post(tenant.api, {"title": "x", "priority": "nope"}, "retry-me").status_code == 422
    assert _post(tenant.api, {"title": "x", "requester_id": str(uuid.uuid4())}, "retry-me").status_code == 422
    assert _post(tenant.api, {"title": "x"}, "retry-me").status_code == 201


def test_concurrent_repeats_of_one_key_create_one_ticket(app, tenant, table_counts):
    threads = 6
    barrier = threading.Barrier(threads)
    bodies: list[dict] = []
    lock = threading.Lock()

    def send() -> None:
        client = app.test_client()
        barrier.wait()
        resp = client.post("/api/v1/tickets", json={"title": "racing"},
                           headers={"Authorization": f"Bearer {tenant.key}", "Idempotency-Key": "race"})
        with lock:
            bodies.append((resp.status_code, resp.get_json()))

    workers = [threading.Thread(target=send) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert {status for status, _ in bodies} == {201}
    assert len({body["id"] for _, body in bodies}) == 1
    assert table_counts(tenant)["tickets"] == 1


def test_ten_concurrent_requests_with_one_key_on_a_real_server_make_one_ticket(services, tenant, table_counts):
    """Real threads against gunicorn: one request creates, every other one replays it (or is told 409)."""
    server = start_gunicorn(services)
    try:
        barrier = threading.Barrier(10)
        answers: list[tuple[int, bytes, str | None]] = []
        lock = threading.Lock()

        def send() -> None:
            request = urllib.request.Request(
                f"{server.url}/api/v1/tickets", data=json.dumps({"title": "racing", "priority": "high"}).encode(),
                method="POST", headers={"Authorization": f"Bearer {tenant.key}", "Idempotency-Key": "race-10",
                                        "Content-Type": "application/json"})
            barrier.wait()
            try:
                with urllib.request.urlopen(request, timeout=30) as resp:
                    answer = (resp.status, resp.read(), resp.headers.get("Idempotent-Replayed"))
            except urllib.error.HTTPError as exc:
                answer = (exc.code, exc.read(), None)
            with lock:
                answers.append(answer)

        threads = [threading.Thread(target=send) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        stop_gunicorn(server)
    assert len(answers) == 10 and {status for status, _, _ in answers} <= {201, 409}
    created = [body for status, body, replayed in answers if status == 201 and replayed is None]
    replayed = [body for status, body, replayed in answers if status == 201 and replayed == "true"]
    assert len(created) == 1 and all(body == created[0] for body in replayed)
    assert table_counts(tenant)["tickets"] == 1


def test_an_overlong_idempotency_key_answers_422(tenant, table_counts):
    before = table_counts(tenant)
    resp = _post(tenant.api, {"title": "x"}, "k" * 256)
    assert resp.status_code == 422
    assert table_counts(tenant) == before


def test_a_key_older_than_24_hours_starts_afresh(tenant, in_tenant):
    first = _post(tenant.api, {"title": "yesterday"}, "old-key")
    with in_tenant(tenant) as session:
        session.execute(sa.update(IdempotencyRecord).where(IdempotencyRecord.key == "old-key")
                        .values(created_at=sa.func.now() - sa.text("interval '25 hours'")))
        session.commit()
    again = _post(tenant.api, {"title": "today"}, "old-key")
    assert again.status_code == 201
    assert again.get_json()["id"] != first.get_json()["id"]
    assert "Idempotent-Replayed" not in again.headers
