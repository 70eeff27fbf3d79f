"""Deleting a file (`DELETE /api/v1/attachments/{id}`): its uploader or an admin only, its quota given
back, its stored objects deleted by an outbox job (also when a scan was still running), the audit
log keeping what it was, and the event feed saying so."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from app.audit import AuditEntry
from app.media import services
from app.media.storage import LocalStorage, StorageError
from app.outbox.models import OutboxRow
from app.worker import run_outbox_row, use_app
from tests.helpers import ApiClient, get_attachment, new_ticket, post_message
from tests.media import samples
from tests.media.conftest import DELETE_HANDLER, SCAN_HANDLER

VARIANTS = ("original", "clean", "thumbnail")


def used(api) -> int:
    return api.get("/api/v1/media/types").get_json()["used_bytes"]


def objects(stored, tenant, attachment_id: str) -> dict[str, bool]:
    return {v: stored(tenant, attachment_id, v) is not None for v in VARIANTS}


@pytest.fixture
def people(tenant):
    """A requester with a ticket, two agents and the tenant's admin key, each as an API client."""
    requester = tenant.key_for(tenant.user("requester"))
    return {"requester": requester, "agent": tenant.key_for(tenant.user("agent")),
            "other_agent": tenant.key_for(tenant.user("agent")), "admin": tenant.api,
            "ticket": new_ticket(requester, "Printer")}


def test_an_unsent_upload_is_deleted_by_its_uploader_with_its_quota_and_file(tenant, people, upload, run_scans,
                                                                             stored):
    agent, ticket = people["agent"], people["ticket"]
    before = used(agent)
    draft = upload(agent, ticket["id"], samples.text(300), "draft.txt").get_json()
    assert used(agent) == before + draft["size"]

    resp = agent.delete(f"/api/v1/attachments/{draft['id']}")
    assert resp.status_code == 204 and resp.data == b""
    assert agent.get(f"/api/v1/attachments/{draft['id']}").status_code == 404
    assert used(agent) == before
    run_scans(tenant)  # the scan finds nothing to scan; the deletion job deletes the upload
    assert objects(stored, tenant, draft["id"]) == dict.fromkeys(VARIANTS, False)
    assert agent.delete(f"/api/v1/attachments/{draft['id']}").status_code == 404  # once
    assert post_message(agent, ticket["id"], body="x", attachment_ids=[draft["id"]]).status_code == 422


def test_a_clean_image_gives_back_its_copy_and_thumbnail(tenant, people, upload, run_scans, stored):
    agent, ticket = people["agent"], people["ticket"]
    before = used(agent)
    image = upload(agent, ticket["id"], samples.png(640, 480), "shot.png").get_json()
    run_scans(tenant)
    clean = get_attachment(agent, image["id"])
    assert clean["status"] == "clean" and clean["thumbnail_url"]
    assert objects(stored, tenant, image["id"]) == {"original": False, "clean": True, "thumbnail": True}
    assert used(agent) > before + clean["size"]  # the thumbnail counts too

    assert agent.delete(f"/api/v1/attachments/{image['id']}").status_code == 204
    assert used(agent) == before
    assert agent.get(f"/api/v1/attachments/{image['id']}/download").status_code == 404
    run_scans(tenant)
    assert objects(stored, tenant, image["id"]) == dict.fromkeys(VARIANTS, False)


def test_a_refused_file_gives_back_nothing_twice(tenant, people, upload, run_scans):
    agent, ticket = people["agent"], people["ticket"]
    before = used(agent)
    infected = upload(agent, ticket["id"], samples.eicar(), "eicar.txt").get_json()
    run_scans(tenant)
    assert get_attachment(agent, infected["id"])["status"] == "infected" and used(agent) == before
    assert agent.delete(f"/api/v1/attachments/{infected['id']}").status_code == 204
    assert used(agent) == before


def test_only_its_uploader_or_an_admin_may_delete_a_file(tenant, people, upload):
    requester, agent, other, admin, ticket = (people["requester"], people["agent"], people["other_agent"],
                                              people["admin"], people["ticket"])
    public = upload(agent, ticket["id"], samples.text(), "answer.txt").get_json()
    note = upload(agent, ticket["id"], samples.text(), "note.txt").get_json()
    assert post_message(agent, ticket["id"], body="here", attachment_ids=[public["id"]]).status_code == 201
    assert post_message(agent, ticket["id"], body="psst", internal=True,
                        attachment_ids=[note["id"]]).status_code == 201
    mine = upload(requester, ticket["id"], samples.text(), "mine.txt").get_json()
    assert post_message(requester, ticket["id"], body="mine", attachment_ids=[mine["id"]]).status_code == 201
    quota = used(admin)

    for api, attachment in ((other, public), (requester, public), (other, mine), (agent, mine)):
        resp = api.delete(f"/api/v1/attachments/{attachment['id']}")
        assert resp.status_code == 403 and resp.get_json()["code"] == 403, resp.get_json()
    resp = requester.delete(f"/api/v1/attachments/{note['id']}")  # an internal note's file: not there for them
    assert resp.status_code == 404 and resp.get_json()["message"] == "No such attachment."
    assert used(admin) == quota and all(get_attachment(admin, a["id"]) for a in (public, note, mine))

    assert requester.delete(f"/api/v1/attachments/{mine['id']}").status_code == 204  # sent, but theirs
    assert admin.delete(f"/api/v1/attachments/{note['id']}").status_code == 204  # an admin: anyone's
    assert agent.delete(f"/api/v1/attachments/{public['id']}").status_code == 204
    assert used(admin) == quota - mine["size"] - note["size"] - public["size"]


def test_a_requesters_file_sent_on_their_closed_ticket_stays_until_they_reopen_it(tenant, people, upload):
    """As their message does: a closed ticket's conversation is a record the requester changes only
    after reopening it. An upload never sent is not part of it, and may still go."""
    requester, admin, ticket = people["requester"], people["admin"], people["ticket"]
    sent = upload(requester, ticket["id"], samples.text(), "sent.txt").get_json()
    unsent = upload(requester, ticket["id"], samples.text(), "unsent.txt").get_json()
    assert post_message(requester, ticket["id"], body="log", attachment_ids=[sent["id"]]).status_code == 201
    assert requester.post(f"/api/v1/tickets/{ticket['id']}/close", json={}).status_code == 200
    quota = used(admin)

    refused = requester.delete(f"/api/v1/attachments/{sent['id']}")
    assert refused.status_code == 409 and refused.get_json()["code"] == 409, refused.get_json()
    assert get_attachment(admin, sent["id"]) and used(admin) == quota
    assert requester.delete(f"/api/v1/attachments/{unsent['id']}").status_code == 204
    assert requester.post(f"/api/v1/tickets/{ticket['id']}/reopen").status_code == 200
    assert requester.delete(f"/api/v1/attachments/{sent['id']}").status_code == 204
    assert used(admin) == quota - unsent["size"] - sent["size"]


def test_another_tenants_file_is_404_and_stays(tenant, other_tenant, upload):
    theirs_ticket = new_ticket(other_tenant.api)
    theirs = upload(other_tenant.api, theirs_ticket["id"], samples.text(), "theirs.txt").get_json()
    resp = tenant.api.delete(f"/api/v1/attachments/{theirs['id']}")
    assert resp.status_code == 404 and resp.get_json()["code"] == 404
    assert get_attachment(other_tenant.api, theirs["id"])["filename"] == "theirs.txt"


def test_a_revoked_key_deletes_nothing(tenant, people, upload):
    made = tenant.api.post("/api/v1/api-keys", json={"name": "laptop", "role": "agent",
                                                     "user_id": tenant.user("agent")["id"]}).get_json()
    agent, ticket = ApiClient(tenant.api.client, made["key"]), people["ticket"]
    draft = upload(agent, ticket["id"], samples.text(), "draft.txt").get_json()
    assert tenant.api.delete(f"/api/v1/api-keys/{made['id']}").status_code == 204
    assert agent.delete(f"/api/v1/attachments/{draft['id']}").status_code == 401
    assert get_attachment(tenant.api, draft["id"])["filename"] == "draft.txt"


@pytest.mark.parametrize("raw", ["not-a-uuid", "00000000-0000-0000-0000-00000000000%0A", "%00", "1" * 300])
def test_a_malformed_id_is_404(tenant, raw):
    resp = tenant.api.delete(f"/api/v1/attachments/{raw}")
    assert resp.status_code == 404 and resp.get_json()["code"] == 404


def test_a_sent_file_leaves_its_message_and_the_audit_log_keeps_what_it_was(tenant, people, upload, in_tenant):
    agent, ticket = people["agent"], people["ticket"]
    sent = upload(agent, ticket["id"], samples.text(), "log.txt").get_json()
    kept = upload(agent, ticket["id"], samples.text(), "kept.txt").get_json()
    message = post_message(agent, ticket["id"], body="logs", attachment_ids=[sent["id"], kept["id"]]).get_json()
    assert agent.delete(f"/api/v1/attachments/{sent['id']}").status_code == 204

    listed = agent.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"]
    shown = next(m for m in listed if m["id"] == message["id"])
    assert [a["id"] for a in shown["attachments"]] == [kept["id"]]
    with in_tenant(tenant) as session:
        before = session.execute(sa.select(AuditEntry.before).where(
            AuditEntry.entity == "attachment", AuditEntry.entity_id == sent["id"],
            AuditEntry.action == "deleted")).scalar_one()
    assert before["filename"] == "log.txt" and before["sha256"] == sent["sha256"]
    assert before["message_id"] == message["id"]


def test_the_event_feed_says_a_file_was_deleted(tenant, people, upload):
    agent, ticket = people["agent"], people["ticket"]
    public = upload(agent, ticket["id"], samples.text(), "answer.txt").get_json()
    assert post_message(agent, ticket["id"], body="here", attachment_ids=[public["id"]]).status_code == 201
    assert agent.delete(f"/api/v1/attachments/{public['id']}").status_code == 204
    feed = tenant.api.get("/api/v1/events", query_string={"types": "attachment.deleted"}).get_json()["items"]
    assert [e["data"]["attachment"]["id"] for e in feed] == [public["id"]]
    assert feed[0]["data"]["attachment"]["filename"] == "answer.txt"


def test_a_file_deleted_while_its_scan_runs_leaves_nothing_in_storage(app, tenant, people, upload, stored,
                                                                     monkeypatch, in_tenant):
    agent, ticket = people["agent"], people["ticket"]
    image = upload(agent, ticket["id"], samples.png(640, 480), "shot.png").get_json()
    inspect, ran = services.inspect, {}

    def delete_and_clean_up() -> None:  # another request and another worker, on their own thread
        ran["delete"] = agent.delete(f"/api/v1/attachments/{image['id']}").status_code
        with in_tenant(tenant) as session:
            jobs = list(session.execute(sa.select(OutboxRow.id).where(OutboxRow.handler == DELETE_HANDLER)).scalars())
        ran["jobs"] = [run_outbox_row(tenant.slug, job) for job in jobs]

    def deleted_meanwhile(*args, **kwargs):
        verdict = inspect(*args, **kwargs)  # the clean copy and thumbnail are stored after this
        other = threading.Thread(target=delete_and_clean_up)
        other.start()
        other.join()
        return verdict

    monkeypatch.setattr(services, "inspect", deleted_meanwhile)
    use_app(app)
    with in_tenant(tenant) as session:
        scans = list(session.execute(sa.select(OutboxRow.id).where(OutboxRow.handler == SCAN_HANDLER)).scalars())
    assert [run_outbox_row(tenant.slug, job) for job in scans] == ["done"]
    assert ran == {"delete": 204, "jobs": ["done"]}
    assert objects(stored, tenant, image["id"]) == dict.fromkeys(VARIANTS, False)
    assert agent.get(f"/api/v1/attachments/{image['id']}").status_code == 404


def test_a_storage_outage_delays_the_deletion_of_the_file_but_does_not_lose_it(app, tenant, people, upload,
                                                                              run_scans, stored, monkeypatch,
                                                                              in_tenant):
    """However long it lasts: a storage that cannot delete is an outage, whose runs do not count towards
    OUTBOX_MAX_ATTEMPTS (they did, and after an hour of outage a deleted file's bytes stayed for good)."""
    monkeypatch.setitem(app.config, "OUTBOX_MAX_ATTEMPTS", 2)
    agent, ticket = people["agent"], people["ticket"]
    draft = upload(agent, ticket["id"], samples.text(), "draft.txt").get_json()
    run_scans(tenant)
    assert agent.delete(f"/api/v1/attachments/{draft['id']}").status_code == 204

    def down(self, keys):
        raise StorageError("the storage is down")

    with monkeypatch.context() as patched:
        patched.setattr(LocalStorage, "delete", down)
        run_scans(tenant, rounds=5)
    assert stored(tenant, draft["id"]) is not None  # not yet: the job failed, its outbox row waits
    with in_tenant(tenant) as session:
        row = session.execute(sa.select(OutboxRow).where(OutboxRow.handler == DELETE_HANDLER)).scalar_one()
        assert row.given_up_at is None and row.attempts == 0 and "storage is down" in row.last_error
    run_scans(tenant)
    assert stored(tenant, draft["id"]) is None


def test_a_copy_stored_by_a_scan_try_that_failed_after_its_file_was_deleted_is_deleted_by_the_retry(
        app, tenant, people, upload, stored, monkeypatch, in_tenant):
    agent, ticket = people["agent"], people["ticket"]
    image = upload(agent, ticket["id"], samples.png(640, 480), "shot.png").get_json()
    inspect, writer = services.inspect, LocalStorage.writer

    def delete_and_clean_up() -> None:  # another request and another worker, on their own thread
        assert agent.delete(f"/api/v1/attachments/{image['id']}").status_code == 204
        with in_tenant(tenant) as session:
            jobs = list(session.execute(sa.select(OutboxRow.id).where(OutboxRow.handler == DELETE_HANDLER)).scalars())
        assert [run_outbox_row(tenant.slug, job) for job in jobs] == ["done"]

    def deleted_meanwhile(*args, **kwargs):
        verdict = inspect(*args, **kwargs)
        other = threading.Thread(target=delete_and_clean_up)
        other.start()
        other.join()
        return verdict

    def thumbnails_fail(self, key):  # the clean copy is stored, then the storage fails
        if key.endswith("/thumbnail"):
            raise StorageError("the storage is down")
        return writer(self, key)

    monkeypatch.setattr(services, "inspect", deleted_meanwhile)
    monkeypatch.setattr(LocalStorage, "writer", thumbnails_fail)
    use_app(app)
    with in_tenant(tenant) as session:
        scans = list(session.execute(sa.select(OutboxRow.id).where(OutboxRow.handler == SCAN_HANDLER)).scalars())
    run_outbox_row(tenant.slug, scans[0])  # the outage: the try asks to be retried later
    assert stored(tenant, image["id"], "clean") is not None
    monkeypatch.setattr(LocalStorage, "writer", writer)
    assert run_outbox_row(tenant.slug, scans[0]) == "done"  # the retry finds the file deleted
    assert objects(stored, tenant, image["id"]) == dict.fromkeys(VARIANTS, False)


def test_migration_t0013_counts_what_each_file_kept_in_storage(app):
    """Files from before t0013 count their size, a refused one nothing (its objects were deleted)."""
    from tenants.migrations import upgrade_tenant
    from tests.helpers import in_schema, tenant_schema_at

    with tenant_schema_at(app, "t0012") as (engine, schema):
        with in_schema(engine, schema) as conn:
            ticket = conn.execute(sa.text("INSERT INTO tickets (title) VALUES ('t') RETURNING id")).scalar_one()
            for name, status in (("a", "pending"), ("b", "clean"), ("c", "rejected"), ("d", "infected"),
                                 ("e", "scan_failed")):
                conn.execute(sa.text("INSERT INTO attachments (ticket_id, filename, content_type, size, sha256, "
                                     "status) VALUES (:t, :name, 'text/plain', 100, 'x', :status)"),
                             {"t": ticket, "name": name, "status": status})
        assert upgrade_tenant(engine, schema) is True
        with in_schema(engine, schema) as conn:
            stored = dict(conn.execute(sa.text("SELECT filename, stored_bytes FROM attachments")).all())
    assert stored == {"a": 100, "b": 100, "c": 0, "d": 0, "e": 0}


def test_what_a_verdict_does_away_with_is_deleted_after_a_storage_outage(tenant, people, upload, run_scans, stored,
                                                                          monkeypatch):
    """A refused file's bytes and a cleaned image's original (its GPS position) go by the outbox: a
    storage outage, or a worker killed after the verdict, only delays it (it was done once, after commit)."""
    agent, ticket = people["agent"], people["ticket"]
    photo = upload(agent, ticket["id"], samples.jpeg_with_gps_and_comment(), "home.jpg").get_json()
    virus = upload(agent, ticket["id"], samples.eicar(), "eicar.txt").get_json()

    def down(self, keys):
        raise StorageError("the storage is down")

    with monkeypatch.context() as patched:
        patched.setattr(LocalStorage, "delete", down)
        run_scans(tenant, rounds=2)
    assert [get_attachment(agent, a["id"])["status"] for a in (photo, virus)] == ["clean", "infected"]
    assert stored(tenant, photo["id"]) is not None and stored(tenant, virus["id"]) is not None  # not yet
    run_scans(tenant)
    assert stored(tenant, photo["id"]) is None and stored(tenant, virus["id"]) is None
    assert stored(tenant, photo["id"], "clean") is not None  # what is served stays
    feed = agent.get("/api/v1/events?limit=200").get_json()["items"]
    assert "attachment.discarded" not in {e["type"] for e in feed}  # an internal signal, not an event

