"""`flask tenants create|list|suspend|drop`."""

import secrets

import sqlalchemy as sa

from app.extensions import db
from tenants import schema_for


def test_create_list_suspend_drop(app):
    slug = f"cli-{secrets.token_hex(4)}"
    runner = app.test_cli_runner()
    created = runner.invoke(args=["tenants", "create", slug, "--name", "CLI Org",
                                  "--admin-email", "a@cli.example", "--admin-password", "long password"])
    assert created.exit_code == 0, created.output
    key = created.output.split("shown once): ")[1].strip()
    assert app.test_client().get("/api/v1/users", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert runner.invoke(args=["tenants", "create", slug, "--name", "x", "--admin-email", "b@x.example",
                               "--admin-password", "long password"]).exit_code != 0
    assert runner.invoke(args=["tenants", "create", "www", "--name", "x", "--admin-email", "b@x.example",
                               "--admin-password", "long password"]).exit_code != 0
    listing = runner.invoke(args=["tenants", "list"]).output
    assert slug in listing and schema_for(slug) in listing and "active" in listing
    assert runner.invoke(args=["tenants", "suspend", slug]).exit_code == 0
    assert "suspended" in runner.invoke(args=["tenants", "list"]).output
    with app.app_context():
        tenant_id = db.session.execute(sa.text("select id from public.tenants where slug = :s"), {"s": slug}).scalar()
        db.session.rollback()
    assert runner.invoke(args=["tenants", "drop", slug, "--yes"]).exit_code == 0
    assert app.test_client().get("/api/v1/users", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    with app.app_context():  # nothing of it is left in Redis either (its counters lived out their windows)
        from app.auth.key_cache import generation_key
        from app.extensions import redis_client

        assert 0 < redis_client().ttl(generation_key(str(tenant_id))) <= 86_400  # a last one, that expires
        assert list(redis_client().scan_iter(match=f"tms:{tenant_id}:*")) == []  # its key's counters too
    with app.app_context():
        schemas = db.session.execute(sa.text("select schema_name from information_schema.schemata")).scalars()
        assert schema_for(slug) not in set(schemas)
    assert runner.invoke(args=["tenants", "drop", slug, "--yes"]).exit_code != 0


def test_list_holds_no_lock_from_one_tenant_to_the_next(app, make_tenant, monkeypatch):
    """One transaction across every tenant's version table would hold a lock on each until the listing ends."""
    from tenants import migrations

    make_tenant(), make_tenant()
    held = []

    def noted(conn, schema):
        revision = real(conn, schema)
        held.append(conn.exec_driver_sql(
            "select count(*) from pg_locks l join pg_class c on c.oid = l.relation join pg_namespace n "
            "on n.oid = c.relnamespace where l.pid = pg_backend_pid() and n.nspname like 'tenant%%'").scalar())
        return revision

    real = migrations.tenant_revision
    monkeypatch.setattr(migrations, "tenant_revision", noted)
    assert app.test_cli_runner().invoke(args=["tenants", "list"]).exit_code == 0
    assert len(held) >= 2 and set(held) == {0}

def test_create_holds_its_arguments_to_signups_rules_and_the_others_to_a_slugs(app):
    runner = app.test_cli_runner()
    good = {"--name": "CLI Org", "--admin-email": "a@cli.example", "--admin-password": "long password"}
    cases = [({"--admin-password": "x"}, "--admin-password: Length must be between 8 and 256."),
             ({"--admin-password": ""}, "--admin-password"),
             ({"--admin-email": "not-an-email"}, "--admin-email"),
             ({"--name": "\x1b[2J\x1b[31mOrg"}, "--name: Control characters are not allowed."),
             ({"--name": "Org\x00"}, "--name: NUL characters are not allowed."),
             ({"--name": "x" * 201}, "--name: Length must be between 1 and 200."),
             ({"--name": ""}, "--name")]
    for change, said in cases:
        slug = f"cli-{secrets.token_hex(4)}"
        args = [a for pair in {**good, **change}.items() for a in pair]
        result = runner.invoke(args=["tenants", "create", slug, *args])
        assert result.exit_code == 2 and said in result.output, (change, result.output)
        with app.app_context():
            assert db.session.execute(sa.text("select count(*) from public.tenants where slug = :s"),
                                      {"s": slug}).scalar() == 0
            db.session.rollback()
    for command in (["suspend"], ["suspend", "--undo"], ["drop", "--yes"], ["move", "--to", "primary"]):
        for slug in ("x\x00", "UPPER", "a" * 300, "acme\n"):
            result = runner.invoke(args=["tenants", command[0], slug, *command[1:]])
            assert result.exit_code == 2 and "is not a slug" in result.output, (command, slug, result.output)
            assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_dropped_tenants_key_cached_by_another_process_does_not_reach_the_next_tenant_of_its_slug(
        app, services, make_tenant):
    """Its key generation was deleted at the drop: a tenant whose keys never changed has none either, so
    another process kept its cached key; with the slug signed up again it read and wrote in the new
    tenant's schema, which has the same name, and could make itself an admin there."""
    from app import create_app
    from tests.helpers import ApiClient, app_config

    slug = f"t{secrets.token_hex(5)}"
    old = make_tenant(slug)
    other_process = ApiClient(create_app(app_config(services)).test_client(), old.key)
    for _ in range(2):  # the first learns the tenant's generation, the second caches the key with it (none)
        assert other_process.get("/api/v1/tickets").status_code == 200
    assert app.test_cli_runner().invoke(args=["tenants", "drop", slug, "--yes"]).exit_code == 0
    new = make_tenant(slug)
    assert new.api.post("/api/v1/tickets", json={"title": "the new organization's"}).status_code == 201
    assert other_process.get("/api/v1/tickets").status_code == 401
    joined = other_process.post("/api/v1/users", json={"email": "mallory@evil.example", "name": "Mallory",
                                                       "role": "admin", "password": "correct horse battery"})
    assert joined.status_code == 401
    assert "mallory@evil.example" not in str(new.api.get("/api/v1/users").get_json())
