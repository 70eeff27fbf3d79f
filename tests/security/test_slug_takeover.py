"""A slug names a schema, so a near-copy of a slug must never create anything or reach a tenant.

A signup with `"<existing-slug>\\n"` once answered 201 and wrote into the existing tenant's
schema. Every path that creates a tenant (API, signup page, CLI) refuses the whole class of
near-copies, and the registry, schema names and resolution refuse them again on their own.
"""

from __future__ import annotations

import secrets
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from tenants.names import checked_schema, schema_for, slug_problem
from tenants.resolution import active_tenant


def near_copies(slug: str) -> list[str]:
    """Return spellings that a loose check could take for `slug`, or that name a different schema."""
    return [
        slug + "\n", slug + "\r\n", slug + "\r", "\n" + slug, slug + " ", " " + slug, slug + "\t",
        slug + "\x0b", slug + "\x0c", slug + "\x00", slug + "\x1b", slug + "\x7f", slug + "\x85",
        slug + "\u2028", slug + "\u2029", slug + "\u00a0", slug + "\u200b", slug[:2] + "\u200b" + slug[2:],
        slug + "\ufeff", "\ufeff" + slug, slug.upper(), slug[0].upper() + slug[1:],
        slug.replace("k", "\u212a"),  # KELVIN SIGN, which lower() turns into "k"
        slug.replace("s", "\u017f"),  # LATIN SMALL LETTER LONG S
        slug.replace("a", "\u0430"),  # CYRILLIC SMALL LETTER A
        slug.replace("e", "\u0435"),  # CYRILLIC SMALL LETTER IE
        "".join(chr(ord(c) + 0xFEE0) if c.isalnum() else c for c in slug),  # fullwidth forms
        slug + "-\n", slug + "/", slug + "%0a", slug + "\\n", slug.replace("-", "_"),
    ]


@pytest.fixture
def victim(make_tenant):
    return make_tenant(f"ks-ae-{secrets.token_hex(3)}")


def _registry(app) -> tuple[int, set[str]]:
    with app.app_context():
        count = db.session.execute(sa.text("select count(*) from public.tenants")).scalar_one()
        schemas = set(db.session.execute(sa.text("select nspname from pg_namespace")).scalars())
        db.session.rollback()
    return count, schemas


def _victim_users(victim) -> list[str]:
    body = victim.api.get("/api/v1/users?limit=200").get_json()
    return sorted(u["email"] for u in body["items"])


def test_every_creation_path_refuses_near_copies_of_a_slug(app, victim):
    before, users = _registry(app), _victim_users(victim)
    client, runner = app.test_client(), app.test_cli_runner()
    for i, slug in enumerate(near_copies(victim.slug)):
        email = f"intruder{i}@evil.example"
        api = client.post("/api/v1/signup", json={"name": "Evil", "slug": slug, "admin_email": email,
                                                  "admin_password": "long password"})
        assert api.status_code == 422, (slug, api.get_json())
        assert list(api.get_json()["errors"]) == ["slug"]
        page = client.post("/signup", data={"name": "Evil", "slug": slug, "admin_email": email,
                                            "admin_password": "long password"})
        assert page.status_code == 422, slug
        cli = runner.invoke(args=["tenants", "create", slug, "--name", "Evil", "--admin-email", email,
                                  "--admin-password", "long password"])
        assert cli.exit_code != 0, (slug, cli.output)
    assert _registry(app) == before
    assert _victim_users(victim) == users


def test_a_trailing_newline_slug_with_no_tenant_is_422_not_500(client):
    resp = client.post("/api/v1/signup", json={"name": "x", "slug": "ab\n", "admin_email": "a@b.example",
                                               "admin_password": "long password"})
    assert resp.status_code == 422
    assert resp.get_json()["errors"] == {"slug": [slug_problem("ab\n")]}


def test_schema_names_are_checked_where_they_are_built():
    assert schema_for("acme-inc") == "tenant_acme_inc"
    for bad in ("acme\n", "Acme", "acme_inc", "a", "\u212aelvin", "acme\u2028", 42, None):
        with pytest.raises(ValueError):
            schema_for(bad)
    for bad in ("tenant_acme\n", "tenant_", "public", "tenant_Acme", 'tenant_a"b', "tenant_" + "a" * 57):
        with pytest.raises(ValueError):
            checked_schema(bad)


def test_the_registry_refuses_malformed_or_mismatched_names(app, victim):
    rows = [("bad\n", "tenant_bad\n"), ("ok-name", "tenant_other"), ("ok-name", "tenant_ok-name"),
            (victim.slug + "\n", schema_for(victim.slug))]
    with app.app_context():
        for slug, schema in rows:
            with pytest.raises(IntegrityError), db.session.begin_nested():
                db.session.execute(sa.text(
                    "insert into public.tenants (id, slug, name, schema_name) values (:id, :slug, 'x', :schema)"),
                    {"id": uuid.uuid4(), "slug": slug, "schema": schema})
        db.session.rollback()


def test_resolution_matches_exact_slugs_only(app, victim):
    with app.app_context():
        assert active_tenant(victim.slug) is not None
        for slug in near_copies(victim.slug):
            assert active_tenant(slug) is None, slug
        db.session.rollback()
    client = app.test_client()
    assert client.get(f"/t/{victim.slug}/login").status_code == 200
    for path in (f"/t/{victim.slug}%0a/login", f"/t/{victim.slug}%0A%0D/login", f"/t/{victim.slug.upper()}/login",
                 f"/t/{victim.slug.replace('k', '%E2%84%AA')}/login"):
        assert client.get(path).status_code == 404, path


def test_hosts_that_only_look_like_a_tenant_resolve_to_none(services, victim):
    from app import create_app
    from tests.helpers import app_config

    client = create_app(app_config(services, SERVER_NAME_FOR_TENANTS="desk.example")).test_client()
    assert client.get("/login", headers={"Host": f"{victim.slug}.desk.example"}).status_code == 200
    for host in (f"{victim.slug.replace('k', chr(0x212A))}.desk.example", f"{victim.slug}\n.desk.example",
                 f"x.{victim.slug}.desk.example"):
        assert client.get("/login", environ_overrides={"HTTP_HOST": host}).status_code == 404, host


def test_the_registry_migration_reports_rows_that_break_the_rules(app, caplog):
    from alembic import command

    from tenants.migrations import alembic_config

    with app.app_context(), db.engine.connect() as conn, conn.begin() as outer:
        command.downgrade(alembic_config("public", connection=conn), "p0001")
        conn.execute(sa.text("insert into public.tenants (id, slug, name, schema_name) "
                             "values (:id, 'bad\n', 'x', 'tenant_bad\n')"), {"id": uuid.uuid4()})
        with caplog.at_level("WARNING"):
            command.upgrade(alembic_config("public", connection=conn), "p0002")
        reported = [r.getMessage() for r in caplog.records if "breaks ck_tenants_" in r.getMessage()]
        assert len(reported) == 2 and all("'bad\\n'" in m for m in reported)
        validated = dict(conn.execute(sa.text(
            "select conname, convalidated from pg_constraint where conname like 'ck_tenants_%'")).all())
        assert validated["ck_tenants_slug_format"] is False
        assert validated["ck_tenants_schema_name_format"] is False
        assert validated["ck_tenants_schema_name_of_slug"] is True
        with pytest.raises(IntegrityError), conn.begin_nested():
            conn.execute(sa.text("insert into public.tenants (id, slug, name, schema_name) "
                                 "values (:id, 'new\n', 'x', 'tenant_new\n')"), {"id": uuid.uuid4()})
        outer.rollback()
