"""Shards on two real PostgreSQL servers: placement, routing, isolation, migrating, and moves.

The registry is a database of its own on the main test server (so no other test's relay or
`migrate` meets these tenants); shard `b` is a second server. Moves run under traffic, and with
a failure injected after each of their steps.
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
import sqlalchemy as sa
from rq import Queue, SimpleWorker

from app import create_app
from app.conversation import tokens
from app.embedded import EmbeddedPostgres
from app.extensions import db, redis_client
from app.outbox.dispatch import ShardListeners, relay_once
from app.worker import use_app
from tenants import Tenant, moves, resolution, shadow_tenant_tables, tenant_context, tenant_moved
from tenants.migrations import head, tenant_ddl, upgrade_public
from tenants.names import moved_schema, schema_for
from tests.helpers import ApiClient, app_config, wait_until


@dataclass
class Shards:
    primary: str
    b: str


def _raw(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture(scope="module")
def shards(services, second_postgres) -> Iterator[Shards]:
    name = f"registry_{secrets.token_hex(4)}"
    with psycopg.connect(_raw(services.database_url), autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    yield Shards(primary=services.database_url.rsplit("/", 1)[0] + f"/{name}", b=second_postgres)
    with psycopg.connect(_raw(services.database_url), autocommit=True) as conn:
        conn.execute(f'drop database "{name}" with (force)')


def own_redis(services) -> str:
    """Return a Redis database of this module's own: its tenants are in no other test's registry."""
    return services.redis_url.rsplit("/", 1)[0] + "/1"


def sharded_app(services, shards: Shards, **overrides):
    """Return an app on the module's registry with shard b (and whatever `overrides` set, more shards say)."""
    settings = {"SQLALCHEMY_BINDS": {"b": shards.b}, **overrides}
    app = create_app(app_config(services, SQLALCHEMY_DATABASE_URI=shards.primary, REDIS_URL=own_redis(services),
                                **settings))
    with app.app_context():
        upgrade_public(db.engine)
        for engine in db.engines.values():
            shadow_tenant_tables(engine)
    return app


@pytest.fixture(scope="module")
def app(services, shards):
    return sharded_app(services, shards)


def signup(app, slug: str | None = None) -> tuple[str, ApiClient]:
    slug = slug or f"s{secrets.token_hex(5)}"
    resp = app.test_client().post("/api/v1/signup", json={"name": slug, "slug": slug, "admin_email": f"a@{slug}.io",
                                                          "admin_password": "correct horse battery"})
    assert resp.status_code == 201, resp.get_json()
    return slug, ApiClient(app.test_client(), resp.get_json()["api_key"])


def signup_on(app, shard: str) -> tuple[str, ApiClient]:
    """Sign up a tenant that lands on `shard` (the other one has no room while it does)."""
    other = "b" if shard == "primary" else "primary"
    app.config["SHARD_MAX_TENANTS"] = f"{other}=0 1000000"
    try:
        return signup(app)
    finally:
        app.config["SHARD_MAX_TENANTS"] = "10000"


def schemas_on(url: str, *names: str) -> set[str]:
    with psycopg.connect(_raw(url)) as conn:
        return {n for (n,) in conn.execute("select nspname from pg_namespace where nspname = any(%s)", (list(names),))}


def registry_shard(app, slug: str) -> str:
    with app.app_context():
        return db.session.execute(sa.text("select shard from public.tenants where slug = :s"), {"s": slug}).scalar()


def test_new_tenants_go_where_most_room_is_left_and_full_shards_refuse(services, shards):
    """A registry of its own: rooms primary 2, b 3 place b, primary (a tie goes to the first), b, primary, b."""
    fresh = Shards(primary=shards.primary.rsplit("/", 1)[0] + f"/placement_{secrets.token_hex(4)}", b=shards.b)
    with psycopg.connect(_raw(services.database_url), autocommit=True) as conn:
        conn.execute(f'create database "{fresh.primary.rsplit("/", 1)[1]}"')
    app = sharded_app(services, fresh, SHARD_MAX_TENANTS="primary=2 b=3")
    slugs = [signup(app)[0] for _ in range(5)]
    assert [registry_shard(app, s) for s in slugs] == ["b", "primary", "b", "primary", "b"]
    full = app.test_client().post("/api/v1/signup", json={"name": "x", "slug": "one-too-many", "admin_email": "a@x.io",
                                                          "admin_password": "correct horse battery"})
    assert full.status_code == 503 and full.get_json()["code"] == 503 and "Retry-After" in full.headers
    listing = app.test_cli_runner().invoke(args=["tenants", "shards"])
    assert listing.exit_code == 0
    assert [line.split()[:2] for line in listing.output.splitlines()] == [["primary", "2"], ["b", "3"]]
    with app.app_context():
        for slug in slugs:
            assert app.test_cli_runner().invoke(args=["tenants", "drop", slug, "--yes"]).exit_code == 0
        db.engine.dispose()
    assert schemas_on(shards.b, *map(schema_for, slugs)) == set()


def test_tenants_on_both_shards_in_one_process_stay_apart(app, shards):
    a_slug, a = signup_on(app, "primary")
    b_slug, b = signup_on(app, "b")
    assert schemas_on(shards.primary, schema_for(a_slug), schema_for(b_slug)) == {schema_for(a_slug)}
    assert schemas_on(shards.b, schema_for(a_slug), schema_for(b_slug)) == {schema_for(b_slug)}
    tickets = {}
    for api in (a, b):
        ticket = api.post("/api/v1/tickets", json={"title": "printer"}).get_json()
        assert api.post(f"/api/v1/tickets/{ticket['id']}/messages", json={"body": "hi"}).status_code == 201
        user = api.post("/api/v1/users", json={"email": f"{uuid.uuid4().hex[:8]}@x.io", "name": "n",
                                               "role": "agent", "password": "password123"}).get_json()
        # A key lives in the registry (primary) and its audit entry in the tenant's shard.
        key = api.post("/api/v1/api-keys", json={"name": "k", "role": "agent", "user_id": user["id"]})
        assert key.status_code == 201, key.get_json()
        agent = ApiClient(api.client, key.get_json()["key"])
        assert agent.get("/api/v1/tickets").status_code == 200
        assert api.delete(f"/api/v1/api-keys/{key.get_json()['id']}").status_code == 204
        assert agent.get("/api/v1/tickets").status_code == 401
        audit = api.get("/api/v1/audit-events?entity_type=api_key").get_json()["items"]
        assert {e["action"] for e in audit} >= {"created", "revoked"}
        tickets[api.key] = ticket
    assert a.get(f"/api/v1/tickets/{tickets[b.key]['id']}").status_code == 404
    assert b.get(f"/api/v1/tickets/{tickets[a.key]['id']}").status_code == 404
    assert [t["id"] for t in a.get("/api/v1/tickets").get_json()["items"]] == [tickets[a.key]["id"]]
    assert [t["id"] for t in b.get("/api/v1/tickets").get_json()["items"]] == [tickets[b.key]["id"]]

    # Jobs and the relay route by tenant too: a worker in this process drains both shards' outboxes.
    use_app(app)
    with app.app_context():
        for url, slug in ((shards.primary, a_slug), (shards.b, b_slug)):
            with psycopg.connect(_raw(url)) as conn:
                conn.execute(f'update "{schema_for(slug)}".outbox set created_at = now() - interval \'1 hour\', '
                             "enqueued_at = null")
        queue = Queue("assignment", connection=redis_client())
        queue.empty()
        assert relay_once() >= 2
        assert {job.args[0] for job in queue.get_jobs()} >= {a_slug, b_slug}
        SimpleWorker(["assignment"], connection=redis_client()).work(burst=True)
    for url, slug in ((shards.primary, a_slug), (shards.b, b_slug)):
        with psycopg.connect(_raw(url)) as conn:
            pending = conn.execute(f'select count(*) from "{schema_for(slug)}".outbox where processed_at is null')
            assert pending.fetchone()[0] == 0


def test_migrate_brings_tenants_on_every_shard_to_head(app, shards):
    old = {shard: f"old{secrets.token_hex(4)}" for shard in ("primary", "b")}
    for shard, slug in old.items():
        with psycopg.connect(_raw(getattr(shards, shard))) as conn:
            conn.execute(f'create schema "{schema_for(slug)}"')
            conn.execute(f'set local search_path to "{schema_for(slug)}"')
            conn.execute(tenant_ddl("t0001"))
        with psycopg.connect(_raw(shards.primary)) as conn:
            conn.execute("insert into public.tenants (id, slug, name, schema_name, shard) "
                         "values (gen_random_uuid(), %s, %s, %s, %s)", (slug, slug, schema_for(slug), shard))
    result = app.test_cli_runner().invoke(args=["tenants", "migrate", "--no-progress", "--workers", "2"])
    assert result.exit_code == 0, result.output
    for shard, slug in old.items():
        with psycopg.connect(_raw(getattr(shards, shard))) as conn:
            version = conn.execute(f'select version_num from "{schema_for(slug)}".alembic_version').fetchone()[0]
        assert version == head("tenant")
    listed = app.test_cli_runner().invoke(args=["tenants", "list"]).output
    assert {tuple(line.split()[:3:2]) for line in listed.splitlines()} >= {(old["primary"], "primary"),
                                                                         (old["b"], "b")}


def _rows(url: str, schema: str) -> dict[str, int]:
    with psycopg.connect(_raw(url)) as conn:
        tables = [t for (t,) in conn.execute("select tablename from pg_tables where schemaname = %s", (schema,))]
        return {t: conn.execute(f'select count(*) from "{schema}"."{t}"').fetchone()[0] for t in tables}


def _seed(api: ApiClient) -> None:
    for i in range(3):
        ticket = api.post("/api/v1/tickets", json={"title": f"seed {i}"}).get_json()
        api.post(f"/api/v1/tickets/{ticket['id']}/messages", json={"body": "seed"})


def test_a_move_under_traffic_loses_nothing_that_got_a_2xx(app, shards):
    slug, api = signup_on(app, "primary")
    _seed(api)
    feed = api.get("/api/v1/events?limit=100").get_json()
    thread_ticket = api.post("/api/v1/tickets", json={"title": "conversation"}).get_json()
    created: list[str] = []
    messages: list[str] = []
    refused: list[int] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def write(worker: int) -> None:
        try:
            _write(worker)
        except BaseException as exc:  # a writer's failed assertion fails the test, not only its thread
            failures.append(exc)

    def _write(worker: int) -> None:
        client = ApiClient(app.test_client(), api.key)
        n = 0
        while not stop.is_set():
            key = f"w{worker}-{n}"
            while True:  # a 503 during the move is retried with the same key, as clients do
                resp = client.post("/api/v1/tickets", json={"title": key}, headers={"Idempotency-Key": key})
                if resp.status_code != 503:
                    break
                refused.append(503)
            assert resp.status_code == 201, resp.get_json()
            created.append(resp.get_json()["id"])
            while True:
                said = client.post(f"/api/v1/tickets/{thread_ticket['id']}/messages", json={"body": key},
                                   headers={"Idempotency-Key": f"m{key}"})
                if said.status_code != 503:
                    break
            assert said.status_code == 201, said.get_json()
            messages.append(said.get_json()["id"])
            n += 1

    writers = [threading.Thread(target=write, args=(i,)) for i in range(3)]
    for writer in writers:
        writer.start()
    wait_until(lambda: len(created) >= 3, "writes before the move")
    result = app.test_cli_runner().invoke(args=["tenants", "move", slug, "--to", "b"])
    moved_at = len(created)
    wait_until(lambda: len(created) >= moved_at + 3 or not all(w.is_alive() for w in writers), "writes after it")
    stop.set()
    for writer in writers:
        writer.join()
    assert failures == []
    assert result.exit_code == 0, result.output
    assert f"moved {slug} from primary to b" in result.output

    assert registry_shard(app, slug) == "b"
    schema = schema_for(slug)
    assert schemas_on(shards.primary, schema, moved_schema_of(app, slug)) == set()
    assert schemas_on(shards.b, schema) == {schema}
    listed = {t["id"] for t in api.get("/api/v1/tickets?limit=200").get_json()["items"]}
    assert set(created) <= listed and len(listed) == len(created) + 4  # 3 seeded, 1 conversation
    said = {m["id"] for m in api.get(f"/api/v1/tickets/{thread_ticket['id']}/messages?limit=200").get_json()["items"]}
    assert set(messages) <= said and len(said) == len(messages)
    # The event feed goes on from a cursor taken before the move, and never repeats or skips.
    after = api.post("/api/v1/tickets", json={"title": "after the move"}).get_json()
    seen: list[str] = []
    cursor = feed["poll_cursor"]
    while True:
        page = api.get(f"/api/v1/events?limit=100&cursor={cursor}").get_json()
        seen += [e["data"]["ticket"]["id"] for e in page["items"] if e["type"] == "ticket.created"]
        if not page["next_cursor"]:
            break
        cursor = page["next_cursor"]
    assert seen[-1] == after["id"] and len(seen) == len(set(seen)) == len(created) + 2


def _fenced(app, slug: str) -> moves.Move:
    """Run a move of `slug` to shard b up to its fence: the tenant answers 503 until `_finish`."""
    with app.app_context():
        ref = db.session.execute(sa.select(Tenant).where(Tenant.slug == slug)).scalar_one().ref()
        move = moves.Move(tenant=ref, target="b", lock_timeout_ms=5000)
        for step in (moves.freeze, moves.copy_schema, moves.copy_rows, moves.verify, moves.fence):
            step(move)
        move.copy.close()
        move.source.close()
        db.session.rollback()
    return move


def _finish(app, move: moves.Move) -> None:
    with app.app_context():
        moves.switch(move)
        moves.drop_source(move)


def test_a_request_that_met_the_fence_is_told_of_the_move_however_far_it_went_before_it_asked(app, shards,
                                                                                              monkeypatch):
    """A request's schema vanishes at the fence; by the time it asks why, the move may have switched and
    dropped the fence too. Both happen here just as it asks: the answer is still "moved" (503, retry)."""
    slug, _api = signup_on(app, "primary")
    move = _fenced(app, slug)
    real = resolution.engine_for

    def move_on_first(tenant):
        if registry_shard(app, slug) == "primary":
            _finish(app, move)
        return real(tenant)

    monkeypatch.setattr(resolution, "engine_for", move_on_first)
    with app.app_context():
        assert tenant_moved(move.tenant)
    assert registry_shard(app, slug) == "b" and schemas_on(shards.primary, moved_schema_of(app, slug)) == set()
    monkeypatch.undo()
    with app.app_context():  # a ref naming a database no longer configured: the registry tells
        assert tenant_moved(dataclasses.replace(move.tenant, shard="retired"))


def test_a_signed_in_page_that_meets_a_move_answers_503_with_retry_after(app, shards):
    """The error page asked the database who was signed in, met the fenced schema again and answered 500."""
    slug, _api = signup_on(app, "primary")
    page = app.test_client()
    signed_in = page.post(f"/t/{slug}/login", data={"email": f"a@{slug}.io", "password": "correct horse battery"})
    assert signed_in.status_code == 302
    move = _fenced(app, slug)
    try:
        for resp in (page.get(f"/t/{slug}/"), page.post(f"/t/{slug}/tickets/new", data={"title": "in the move"})):
            assert resp.status_code == 503 and resp.headers["Retry-After"], resp.data[:500]
            assert b"The organization is being moved; try again shortly." in resp.data
    finally:
        _finish(app, move)
    assert page.get(f"/t/{slug}/").status_code == 200  # still signed in, now on shard b


def test_an_export_that_meets_a_move_answers_503_with_retry_after(app, shards):
    """Its COPY ran only once the response had begun, past the error handlers: a 500 cut short."""
    slug, api = signup_on(app, "primary")
    _seed(api)
    move = _fenced(app, slug)
    try:
        for fmt in ("csv", "json", "ndjson"):
            resp = api.get(f"/api/v1/tickets/export?format={fmt}")
            assert resp.status_code == 503 and resp.headers["Retry-After"], resp.data[:500]
            assert resp.get_json()["message"] == "The organization is being moved; try again shortly."
    finally:
        _finish(app, move)
    exported = api.get("/api/v1/tickets/export?format=ndjson")
    assert exported.status_code == 200 and len(exported.data.splitlines()) == 3


def test_a_stream_token_refused_by_a_move_may_be_sent_again(app, shards):
    """The 503 said to retry, but the token had been taken before the schema was met: the retry got 401."""
    slug, api = signup_on(app, "primary")
    ticket = api.post("/api/v1/tickets", json={"title": "live"}).get_json()
    token = api.post(f"/api/v1/tickets/{ticket['id']}/stream-token").get_json()["token"]
    handshake = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                 "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    move = _fenced(app, slug)
    try:
        refused = app.test_client().get(f"/api/v1/tickets/{ticket['id']}/stream?token={token}", headers=handshake)
        assert refused.status_code == 503 and refused.headers["Retry-After"], refused.get_json()
    finally:
        _finish(app, move)
    with app.app_context():
        assert tokens.redeem_token(token) is not None  # still there for the retry, and still one use
        assert tokens.take_token(token) and not tokens.take_token(token)


def test_a_webhook_sent_while_its_tenant_moved_is_recorded_where_the_tenant_went(app, shards, receiver,
                                                                               monkeypatch):
    """Its outcome met the fenced schema: the attempt the receiver got was logged as interrupted, then sent again."""
    from app.webhooks import delivery, sender
    from app.webhooks.models import WebhookDelivery

    monkeypatch.setitem(app.config, "WEBHOOK_ALLOW_PRIVATE_ADDRESSES", True)
    slug, api = signup_on(app, "primary")
    hook = api.post("/api/v1/webhooks", json={"url": receiver.url, "events": ["ticket.created"]}).get_json()
    assert api.post("/api/v1/tickets", json={"title": "sent across"}).status_code == 201
    real_send = sender.send

    def send_then_move(*args, **kwargs):
        sent = real_send(*args, **kwargs)

        def move() -> None:
            with app.app_context():
                moves.move_tenant(slug, "b")

        mover = threading.Thread(target=move)
        mover.start()
        mover.join()
        return sent

    monkeypatch.setattr(sender, "send", send_then_move)
    with app.app_context():
        ref = db.session.execute(sa.select(Tenant).where(Tenant.slug == slug)).scalar_one().ref()
        db.session.rollback()
        with tenant_context(ref):
            [delivery_id] = db.session.execute(sa.select(WebhookDelivery.id)).scalars().all()
            db.session.rollback()
            assert delivery.deliver(delivery_id) == "succeeded"
    assert registry_shard(app, slug) == "b" and len(receiver.requests) == 1
    attempts = api.get(f"/api/v1/webhooks/{hook['id']}/deliveries").get_json()["items"]
    assert [(a["status"], a["error"]) for a in attempts] == [("succeeded", None)]


def moved_schema_of(app, slug: str) -> str:
    with app.app_context():
        tenant_id = db.session.execute(sa.text("select id from public.tenants where slug = :s"), {"s": slug}).scalar()
    return moved_schema(str(tenant_id))


@pytest.mark.parametrize("step", ["freeze", "copy_schema", "copy_rows", "verify", "fence", "switch", "drop_source"])
def test_a_failure_after_any_step_leaves_the_tenant_whole_in_one_place(app, shards, monkeypatch, step):
    slug, api = signup_on(app, "primary")
    _seed(api)
    schema = schema_for(slug)
    before = _rows(shards.primary, schema)
    real = getattr(moves, step)

    def fail_after(move: moves.Move) -> None:
        real(move)
        raise RuntimeError(f"injected after {step}")

    monkeypatch.setattr(moves, step, fail_after)
    with app.app_context():
        if step in ("switch", "drop_source"):
            done = moves.move_tenant(slug, "b")  # the switch stands, so the move is done
            assert done.leftover == (moved_schema_of(app, slug) if step == "drop_source" else None)
        else:
            with pytest.raises(moves.MoveFailed, match=f"injected after {step}"):
                moves.move_tenant(slug, "b")
    home, away = ("b", "primary") if step in ("switch", "drop_source") else ("primary", "b")
    assert registry_shard(app, slug) == home
    assert _rows(getattr(shards, home), schema) == before
    assert schemas_on(getattr(shards, away), schema, moved_schema_of(app, slug)) == set()
    assert len(api.get("/api/v1/tickets").get_json()["items"]) == 3
    monkeypatch.undo()
    with app.app_context():
        moves.move_tenant(slug, away)  # a later move finds nothing left in its way
    assert registry_shard(app, slug) == away and _rows(getattr(shards, away), schema) == before
    assert len(api.get("/api/v1/tickets").get_json()["items"]) == 3


# The injected commit failure leaves SQLAlchemy's transaction already gone when signup rolls back.
@pytest.mark.filterwarnings("ignore:transaction already deassociated from connection:sqlalchemy.exc.SAWarning")
def test_a_signup_whose_registry_commit_fails_leaves_a_schema_the_next_signup_replaces(app, shards):
    """The tenant's shard commits first: a failed registry commit leaves an unnamed schema, never a name without one."""
    slug = f"s{secrets.token_hex(5)}"
    killed = []

    def kill_the_primary_before_it_commits(conn) -> None:
        if not killed and conn.in_transaction():
            killed.append(conn.connection.dbapi_connection.info.backend_pid)
            with psycopg.connect(_raw(shards.primary), autocommit=True) as other:
                other.execute("select pg_terminate_backend(%s)", (killed[0],))

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "commit", kill_the_primary_before_it_commits)  # runs after the shard's commit
    app.config["SHARD_MAX_TENANTS"] = "primary=0 1000000"
    try:
        body = {"name": slug, "slug": slug, "admin_email": f"a@{slug}.io", "admin_password": "correct horse battery"}
        failed = app.test_client().post("/api/v1/signup", json=body)
        assert killed and failed.status_code == 503, failed.get_json()
        assert registry_shard(app, slug) is None
        assert schemas_on(shards.b, schema_for(slug)) == {schema_for(slug)}  # committed, but named by nothing
        sa.event.remove(engine, "commit", kill_the_primary_before_it_commits)
        again = app.test_client().post("/api/v1/signup", json=body)
        assert again.status_code == 201, again.get_json()
    finally:
        app.config["SHARD_MAX_TENANTS"] = "10000"
        if sa.event.contains(engine, "commit", kill_the_primary_before_it_commits):
            sa.event.remove(engine, "commit", kill_the_primary_before_it_commits)
    api = ApiClient(app.test_client(), again.get_json()["api_key"])
    assert registry_shard(app, slug) == "b" and api.get("/api/v1/tickets").get_json()["items"] == []


def test_an_open_socket_of_a_moved_tenant_closes_with_1001_and_reconnects_to_the_new_shard(app, services, shards):
    import websocket

    from tests.helpers import message_events, send
    from tests.servers import start_gunicorn, stop_gunicorn

    slug, api = signup_on(app, "primary")
    ticket = api.post("/api/v1/tickets", json={"title": "live"}).get_json()
    server = start_gunicorn(services, DATABASE_URL=shards.primary, DATABASE_SHARDS=f"b={shards.b}",
                            REDIS_URL=own_redis(services))
    url = f"ws://127.0.0.1:{server.port}/api/v1/tickets/{ticket['id']}/stream"
    try:
        ws = websocket.create_connection(url, header=[f"Authorization: Bearer {api.key}"], timeout=5)
        send(ws, type="message", body="before")
        assert message_events(ws, 1)[0]["body"] == "before"
        with app.app_context():
            moves.move_tenant(slug, "b")
        ws.settimeout(30)
        while (frame := ws.recv_data(control_frame=True))[0] != websocket.ABNF.OPCODE_CLOSE:
            pass  # pings, and anything sent before the close
        assert int.from_bytes(frame[1][:2], "big") == 1001
        ws.close()
        ws = websocket.create_connection(url + "?after_seq=1", header=[f"Authorization: Bearer {api.key}"], timeout=5)
        send(ws, type="message", body="after")
        assert message_events(ws, 1)[0]["body"] == "after"
        ws.close()
    finally:
        stop_gunicorn(server)
    assert registry_shard(app, slug) == "b"
    said = api.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"]
    assert [m["body"] for m in said] == ["before", "after"]


@pytest.mark.parametrize("name", ["B", "b\n", "b\u0131", "1b", "b-c", "a" * 33, "primary", ""])
def test_shard_names_are_matched_whole_and_ascii(app, name):
    from tenants import parse_shards

    with pytest.raises(ValueError):
        parse_shards(f"{name}=postgresql+psycopg://postgres@127.0.0.1/x")
    if name not in ("", "primary"):  # the primary is a shard, just not one DATABASE_SHARDS may name
        refused = app.test_cli_runner().invoke(args=["tenants", "move", "anyone", "--to", name])
        assert refused.exit_code != 0 and "shard" in refused.output


def woken_within(listeners, slugs: set[str]) -> set[str]:
    woken: set[str] = set()
    for _ in range(50):  # a hang guard: each wait returns as soon as a wake arrives
        woken |= listeners.woken(0.2)
        if woken >= slugs:
            break
    return woken


def test_the_relay_is_woken_by_writes_on_every_shard(app):
    on_primary, primary_api = signup_on(app, "primary")
    on_b, b_api = signup_on(app, "b")
    with app.app_context():
        listeners = ShardListeners(retry_after=1)
        try:
            listeners.refresh()
            for api in (primary_api, b_api):
                assert api.post("/api/v1/tickets", json={"title": "wake"}).status_code == 201
            assert woken_within(listeners, {on_primary, on_b}) >= {on_primary, on_b}
        finally:
            listeners.close()


def test_a_shard_that_is_down_stops_no_other_shards_work(services, shards, tmp_path):
    """Its own tenants wait; the others' wakes and sweeps go on (one shard down once stalled them all)."""
    down = EmbeddedPostgres(tmp_path / "c", durable=False).start()
    try:
        app = sharded_app(services, shards, SQLALCHEMY_BINDS={"b": shards.b, "c": down.url})
        app.config["SHARD_MAX_TENANTS"] = "primary=0 b=0 1000000"
        on_c, c_api = signup(app)
        app.config["SHARD_MAX_TENANTS"] = "c=0 b=0 1000000"
        on_primary, primary_api = signup(app)
        assert c_api.post("/api/v1/tickets", json={"title": "on the shard that goes down"}).status_code == 201
        down.stop()
        with app.app_context():
            listeners = ShardListeners(retry_after=60)
            try:
                listeners.refresh()  # shard c refuses: the others listen
                assert primary_api.post("/api/v1/tickets", json={"title": "wake"}).status_code == 201
                assert on_primary in woken_within(listeners, {on_primary})
            finally:
                listeners.close()
            assert relay_once(fresh=True) >= 1  # the primary tenant's rows; shard c's are skipped, not fatal
            queued = Queue("assignment", connection=redis_client()).jobs
            assert any(on_primary in job.args for job in queued)
            assert not any(on_c in job.args for job in queued)

            # Tries to reach it back off (each may block for the connect timeout), then it is heard again.
            listeners = ShardListeners(retry_after=2)
            try:
                waits = []
                for _ in range(3):
                    listeners._next_try["c"] = 0.0  # due now
                    listeners.refresh()
                    waits.append(listeners._waits["c"])
                assert waits == [2, 4, 8]
                down.start()
                listeners._next_try["c"] = 0.0
                listeners.refresh()
                assert "c" not in listeners._waits
                assert c_api.post("/api/v1/tickets", json={"title": "back"}).status_code == 201
                assert on_c in woken_within(listeners, {on_c})
            finally:
                listeners.close()
        # Gone with its shard, as a drop by any process with no database for it would be refused.
        assert app.test_cli_runner().invoke(args=["tenants", "drop", on_c, "--yes"]).exit_code == 0
    finally:
        down.stop()


@pytest.mark.parametrize("same", [
    lambda url: url,  # the primary again
    lambda url: url.replace("postgresql+psycopg://", "postgresql://"),  # another driver, same database
    lambda url: url.replace("postgres@", "other@"),  # another user
])
def test_two_names_for_one_database_are_refused_at_start(services, same):
    """A move drops a tenant's schema from every shard but its own: on an alias it would drop the live one."""
    from app import create_app

    with pytest.raises(ValueError, match="same database"):
        create_app(app_config(services, SQLALCHEMY_BINDS={"b": same(services.database_url)}))


@pytest.mark.parametrize("capacities", ["primay=0", "b=5 10000", "c=1"])
def test_capacities_of_shards_that_are_not_configured_are_refused_at_start(services, capacities):
    from app import create_app

    with pytest.raises(ValueError, match="not configured"):
        create_app(app_config(services, SHARD_MAX_TENANTS=capacities))


def test_a_move_to_the_same_database_under_another_host_name_drops_nothing(services, shards):
    """`localhost` and `127.0.0.1` pass the start-up check as two databases; the move itself tells them apart."""
    alias = Shards(primary=shards.primary, b=shards.primary.replace("@127.0.0.1", "@localhost"))
    assert alias.b != alias.primary
    app = sharded_app(services, alias)
    slug, api = signup_on(app, "primary")
    ticket = api.post("/api/v1/tickets", json={"title": "Still here"}).get_json()
    result = app.test_cli_runner().invoke(args=["tenants", "move", slug, "--to", "b"])
    assert result.exit_code != 0 and "one database" in result.output
    assert registry_shard(app, slug) == "primary"
    assert api.get(f"/api/v1/tickets/{ticket['id']}").get_json()["title"] == "Still here"


def test_a_move_to_a_shard_that_does_not_answer_is_refused_in_words(services, shards, app):
    """`app` has set up the registry; this one's shard b is a port where nothing listens."""
    down = create_app(app_config(services, SQLALCHEMY_DATABASE_URI=shards.primary, REDIS_URL=own_redis(services),
                                SQLALCHEMY_BINDS={"b": "postgresql+psycopg://postgres@127.0.0.1:9/nowhere"},
                                DB_CONNECT_TIMEOUT=2))
    slug, api = signup_on(down, "primary")
    result = down.test_cli_runner().invoke(args=["tenants", "move", slug, "--to", "b"])
    assert result.exit_code == 1 and "could not be reached" in result.output
    assert isinstance(result.exception, SystemExit)  # a refusal, not a traceback
    assert registry_shard(down, slug) == "primary" and api.get("/api/v1/tickets").status_code == 200
    for bad in ("inf", "nan", "-1", "0", "1e9", "soon"):
        refused = down.test_cli_runner().invoke(args=["tenants", "move", slug, "--to", "b", "--lock-timeout", bad])
        assert refused.exit_code == 2 and "--lock-timeout" in refused.output, bad


def test_tenants_list_says_which_shard_does_not_answer(services, shards, app):
    """Tenants on a shard that does not answer are listed with that reason; the others with their revision."""
    here, _ = signup_on(app, "primary")
    there, _ = signup_on(app, "b")
    down = create_app(app_config(services, SQLALCHEMY_DATABASE_URI=shards.primary, REDIS_URL=own_redis(services),
                                SQLALCHEMY_BINDS={"b": "postgresql+psycopg://postgres@127.0.0.1:9/nowhere"},
                                DB_CONNECT_TIMEOUT=2))
    result = down.test_cli_runner().invoke(args=["tenants", "list"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()}
    assert lines[there].endswith("(shard unreachable)")
    assert lines[here].endswith(head("tenant"))


@pytest.mark.parametrize("during", ["fence", "switch"])
def test_a_drop_while_the_tenant_moves_is_refused_and_leaves_no_copy_behind(app, shards, monkeypatch, during):
    """A drop that met a move half done deleted the registry row while the move put the schema back or
    carried it across: the dropped tenant's data stayed on a shard, with nothing pointing at it."""
    slug, api = signup_on(app, "primary")
    _seed(api)
    schema, fenced = schema_for(slug), moved_schema_of(app, slug)
    runner = app.test_cli_runner()
    real = getattr(moves, during)
    tried = []

    def drop_first(move: moves.Move) -> None:
        dropper = threading.Thread(target=lambda: tried.append(runner.invoke(args=["tenants", "drop", slug, "--yes"])))
        dropper.start()
        dropper.join(timeout=60)
        real(move)

    monkeypatch.setattr(moves, during, drop_first)
    with app.app_context():
        moves.move_tenant(slug, "b")
    [refused] = tried
    assert refused.exit_code != 0 and f"{slug} is being moved or dropped" in refused.output
    assert registry_shard(app, slug) == "b" and len(api.get("/api/v1/tickets").get_json()["items"]) == 3
    monkeypatch.undo()
    assert runner.invoke(args=["tenants", "drop", slug, "--yes"]).exit_code == 0
    for url in (shards.primary, shards.b):
        assert schemas_on(url, schema, fenced) == set()


def test_a_move_while_the_tenant_is_dropped_is_refused(app, shards, monkeypatch):
    from tenants import provisioning

    slug, _api = signup_on(app, "primary")
    schema = schema_for(slug)
    refused = []

    def move_meanwhile(tenant_id: str) -> None:
        with pytest.raises(moves.MoveFailed) as exc:  # on a connection of its own, as another command's
            moves.move_tenant(slug, "b")
        refused.append(str(exc.value))

    monkeypatch.setattr(provisioning, "_DROPPERS", [move_meanwhile])
    runner = app.test_cli_runner()
    assert runner.invoke(args=["tenants", "drop", slug, "--yes"]).exit_code == 0
    assert f"{slug} is being moved or dropped" in refused[0]  # the droppers run again after the drop committed
    assert registry_shard(app, slug) is None
    for url in (shards.primary, shards.b):
        assert schemas_on(url, schema) == set()


def test_a_drop_deletes_what_a_failed_move_left_on_other_shards(app, shards, monkeypatch):
    """A move whose last step failed leaves the fenced copy on the old shard (for the next move to drop);
    one whose undo failed can leave a copy on the target. The drop deletes both with the tenant."""
    slug, api = signup_on(app, "primary")
    _seed(api)
    schema, fenced = schema_for(slug), moved_schema_of(app, slug)

    def fail(move: moves.Move) -> None:
        raise RuntimeError("injected")

    monkeypatch.setattr(moves, "drop_source", fail)
    with app.app_context():
        assert moves.move_tenant(slug, "b").leftover == fenced
    assert schemas_on(shards.primary, fenced) == {fenced}
    with psycopg.connect(_raw(shards.primary), autocommit=True) as conn:  # as a copy whose undo failed would be
        conn.execute(f'create schema "{schema}"')
    assert app.test_cli_runner().invoke(args=["tenants", "drop", slug, "--yes"]).exit_code == 0
    for url in (shards.primary, shards.b):
        assert schemas_on(url, schema, fenced) == set()


@pytest.mark.parametrize("home", ["primary", "c"])
def test_a_drop_with_a_shard_down_deletes_nothing_until_it_answers(services, shards, tmp_path, monkeypatch, home):
    """The drop looks on every shard for what a failed move left there, and drops the tenant's schema on its
    own; a shard that does not answer stops it before the tenant's files or schema are touched (its own
    shard down once left it without its files), and the drop can be run again."""
    from tenants import provisioning

    down = EmbeddedPostgres(tmp_path / "c", durable=False).start()
    try:
        app = sharded_app(services, shards, SQLALCHEMY_BINDS={"b": shards.b, "c": down.url})
        app.config["SHARD_MAX_TENANTS"] = "c=0 b=0 1000000" if home == "primary" else "primary=0 b=0 1000000"
        slug, api = signup(app)
        assert api.post("/api/v1/tickets", json={"title": "kept"}).status_code == 201
        dropped_files = []
        monkeypatch.setattr(provisioning, "_DROPPERS", [dropped_files.append])
        down.stop()
        runner = app.test_cli_runner()
        refused = runner.invoke(args=["tenants", "drop", slug, "--yes"])
        if home == "primary":  # another shard: nothing of the tenant's changes
            assert refused.exit_code != 0 and f"{slug} is not dropped, and nothing of it is changed" in refused.output
        else:  # its own: suspended, with all its data
            assert refused.exit_code != 0 and f"{slug} answers nothing now but is not dropped yet" in refused.output
        assert dropped_files == [] and registry_shard(app, slug) == home
        down.start()
        if home == "primary":
            assert [t["title"] for t in api.get("/api/v1/tickets").get_json()["items"]] == ["kept"]
        else:
            assert api.get("/api/v1/tickets").status_code == 404
            with psycopg.connect(_raw(down.url)) as conn:
                assert conn.execute(f'select title from "{schema_for(slug)}".tickets').fetchall() == [("kept",)]
        assert runner.invoke(args=["tenants", "drop", slug, "--yes"]).exit_code == 0
        assert registry_shard(app, slug) is None and len(dropped_files) == 2
        for url in (shards.primary, down.url):
            assert schemas_on(url, schema_for(slug)) == set()
    finally:
        down.stop()


def test_a_drop_that_waits_past_the_statement_timeout_deletes_nothing(services, shards, monkeypatch):
    """The files went first, then the schema's DROP waited behind a long job and timed out: a live tenant
    was left without its files, and the command said it was not dropped."""
    from tenants import provisioning

    app = sharded_app(services, shards, DB_STATEMENT_TIMEOUT_MS=1500)
    slug, api = signup_on(app, "primary")
    _seed(api)
    dropped_files = []
    monkeypatch.setattr(provisioning, "_DROPPERS", [dropped_files.append])
    with psycopg.connect(_raw(shards.primary)) as holder:  # a long job's transaction on the tenant's tickets
        holder.execute(f'select count(*) from "{schema_for(slug)}".tickets')
        refused = app.test_cli_runner().invoke(args=["tenants", "drop", slug, "--yes"])
    assert refused.exit_code != 0 and "answers nothing now but is not dropped yet" in refused.output
    assert "statement timeout" in refused.output
    assert dropped_files == [] and registry_shard(app, slug) == "primary"
    assert _rows(shards.primary, schema_for(slug))["tickets"] == 3
    assert app.test_cli_runner().invoke(args=["tenants", "drop", slug, "--yes"]).exit_code == 0
    assert len(dropped_files) == 2 and registry_shard(app, slug) is None


def test_a_drop_deleting_files_holds_up_no_other_tenants_work(services, shards, monkeypatch):
    """The schema's locks are held while the files are deleted: held on an active tenant, the relay's
    sweep of every tenant on the shard waited for them (minutes, for many files)."""
    from tenants import provisioning

    app = sharded_app(services, shards)
    doomed, _ = signup_on(app, "primary")
    _other, other_api = signup_on(app, "primary")
    deleting, done = threading.Event(), threading.Event()

    def slow_store(tenant_id: str) -> None:  # a store deleting many files
        if not deleting.is_set():
            deleting.set()
            assert done.wait(30)

    monkeypatch.setattr(provisioning, "_DROPPERS", [slow_store])
    dropped = []
    dropper = threading.Thread(target=lambda: dropped.append(app.test_cli_runner().invoke(
        args=["tenants", "drop", doomed, "--yes"])))
    dropper.start()
    assert deleting.wait(30)
    assert other_api.post("/api/v1/tickets", json={"title": "needs the relay"}).status_code == 201
    relayed = threading.Thread(target=lambda: _relay(app))
    relayed.start()
    relayed.join(5)
    swept = not relayed.is_alive()
    done.set()
    dropper.join(30)
    relayed.join(30)
    assert swept and dropped[0].exit_code == 0


def _relay(app) -> None:
    with app.app_context():
        relay_once(fresh=True)
        db.session.rollback()


def test_a_drop_by_a_process_without_the_tenants_shard_deletes_nothing(app, services, shards):
    slug, api = signup_on(app, "b")
    unsharded = create_app(app_config(services, SQLALCHEMY_DATABASE_URI=shards.primary, REDIS_URL=own_redis(services)))
    refused = unsharded.test_cli_runner().invoke(args=["tenants", "drop", slug, "--yes"])
    assert refused.exit_code != 0 and "no database for shard 'b'" in refused.output
    assert registry_shard(app, slug) == "b" and schemas_on(shards.b, schema_for(slug)) == {schema_for(slug)}
    assert api.get("/api/v1/tickets").status_code == 200



def test_a_drop_by_a_process_without_a_shard_the_registry_names_deletes_nothing(app, services, shards):
    """A failed move may have left a copy of the tenant there, which nothing would point at again."""
    signup_on(app, "b")
    slug, api = signup_on(app, "primary")
    unsharded = create_app(app_config(services, SQLALCHEMY_DATABASE_URI=shards.primary, REDIS_URL=own_redis(services)))
    refused = unsharded.test_cli_runner().invoke(args=["tenants", "drop", slug, "--yes"])
    assert refused.exit_code != 0 and "no database for shard 'b'" in refused.output
    assert registry_shard(app, slug) == "primary" and api.get("/api/v1/tickets").status_code == 200


def test_a_drop_whose_commit_is_lost_leaves_no_live_tenant_without_its_files(app, shards, monkeypatch):
    """The files are deleted before the drop commits; a commit that never lands left a live tenant without them."""
    from tenants import provisioning

    slug, api = signup_on(app, "primary")
    dropped_files, commits = [], []
    monkeypatch.setattr(provisioning, "_DROPPERS", [dropped_files.append])
    real_commit = db.session.commit

    def lost_once() -> None:
        commits.append(1)
        if len(commits) == 2:  # the drop's own, after the suspension's
            db.session.rollback()
            raise sa.exc.OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))
        real_commit()

    with app.app_context():
        monkeypatch.setattr(db.session, "commit", lost_once, raising=False)
        refused = app.test_cli_runner().invoke(args=["tenants", "drop", slug, "--yes"])
        monkeypatch.undo()
    assert refused.exit_code != 0 and f"{slug} answers nothing now but is not dropped yet" in refused.output
    assert dropped_files and api.get("/api/v1/tickets").status_code == 404  # no longer anyone's to use
    undone = app.test_cli_runner().invoke(args=["tenants", "suspend", "--undo", slug])  # its files may be gone
    assert undone.exit_code != 0 and "drop has begun" in undone.output
    assert api.get("/api/v1/tickets").status_code == 404
    assert app.test_cli_runner().invoke(args=["tenants", "drop", slug, "--yes"]).exit_code == 0
    assert registry_shard(app, slug) is None and schemas_on(shards.primary, schema_for(slug)) == set()


def test_a_tenant_being_dropped_is_not_moved(app, shards):
    """Its drop is the only way on: a move would carry a tenant whose files may be gone to another shard."""
    from tenants import provisioning

    slug, _api = signup_on(app, "primary")
    with app.app_context():
        provisioning.retire_tenant(slug)
        db.session.commit()
        with pytest.raises(moves.MoveFailed, match="is being dropped"):
            moves.move_tenant(slug, "b")
    assert registry_shard(app, slug) == "primary"
    assert app.test_cli_runner().invoke(args=["tenants", "drop", slug, "--yes"]).exit_code == 0


def test_a_move_releases_the_change_lock_before_it_returns(app, shards, monkeypatch):
    """A closed connection's locks go when its server process gets round to it: the move unlocks itself,
    so a drop run right after it does not find the tenant busy (the guard here is never closed)."""
    from tenants import provisioning

    kept: list[psycopg.Connection] = []
    opened = moves._connect
    slug, _api = signup_on(app, "primary")
    with app.app_context():
        provisioning.retire_tenant(slug)
        db.session.commit()
        monkeypatch.setattr(moves, "_connect", lambda shard: _Unclosed(opened(shard), kept))
        with pytest.raises(moves.MoveFailed, match="is being dropped"):
            moves.move_tenant(slug, "b")
    try:
        dropped = app.test_cli_runner().invoke(args=["tenants", "drop", slug, "--yes"])
        assert dropped.exit_code == 0, dropped.output
    finally:
        for conn in kept:
            conn.close()


class _Unclosed:
    """A connection whose `with` block leaves it open (as a server that has not yet seen the close)."""

    def __init__(self, conn: psycopg.Connection, kept: list[psycopg.Connection]) -> None:
        self.conn = conn
        kept.append(conn)

    def __enter__(self) -> psycopg.Connection:
        return self.conn

    def __exit__(self, *_exc) -> None:
        return None


def test_a_moves_connections_outlast_a_servers_idle_timeouts(app, shards):
    """The guard holds the tenant's change lock idle for the whole move: a server's idle_session_timeout
    would end it, and a drop could then run beside the move."""
    name = shards.primary.rsplit("/", 1)[1]
    with psycopg.connect(_raw(shards.primary), autocommit=True) as admin:
        admin.execute(f'alter database "{name}" set idle_session_timeout = \'1s\'')
        admin.execute(f'alter database "{name}" set idle_in_transaction_session_timeout = \'1s\'')
    try:
        with app.app_context(), moves._connect("primary") as conn:
            shown = [conn.execute(f"show {setting}").fetchone()[0]
                     for setting in ("idle_session_timeout", "idle_in_transaction_session_timeout")]
        assert shown == ["0", "0"]
    finally:
        with psycopg.connect(_raw(shards.primary), autocommit=True) as admin:
            admin.execute(f'alter database "{name}" reset idle_session_timeout')
            admin.execute(f'alter database "{name}" reset idle_in_transaction_session_timeout')
