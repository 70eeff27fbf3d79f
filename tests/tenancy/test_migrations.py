"""Alembic tracks, provisioning at head, and `flask tenants migrate` over many schemas."""

import time

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from app.extensions import db
from tenants.migrations import head, tenant_ddl, upgrade_tenant
from tenants.names import schema_for


def _make_old_tenant(slug: str) -> None:
    """Register a tenant whose schema is still at the first revision."""
    conn = db.session.connection()
    conn.exec_driver_sql(f'create schema "{schema_for(slug)}"')
    conn.exec_driver_sql(f'set local search_path to "{schema_for(slug)}"')
    conn.exec_driver_sql(tenant_ddl("t0001"))
    conn.exec_driver_sql("set local search_path to default")
    conn.execute(sa.text("insert into public.tenants (id, slug, name, schema_name) "
                         "values (gen_random_uuid(), :s, :s, :schema)"), {"s": slug, "schema": schema_for(slug)})
    db.session.commit()


def _revision(slug: str) -> str:
    return db.session.execute(sa.text(f'select version_num from "{schema_for(slug)}".alembic_version')).scalar()


def test_migrate_brings_every_tenant_to_head_and_reports_failures(app, tenant):
    runner = app.test_cli_runner()
    stamp = int(time.time() * 1000) % 10**8
    old = [f"old{stamp}-{i}" for i in range(3)]
    broken = f"broken{stamp}"
    with app.app_context():
        for slug in [*old, broken]:
            _make_old_tenant(slug)
        # A tenant whose schema is damaged must fail alone, without stopping the others.
        db.session.execute(sa.text(f'drop table "{schema_for(broken)}".alembic_version'))
        db.session.execute(sa.text(f'create table "{schema_for(broken)}".alembic_version (version_num int)'))
        db.session.execute(sa.text(f"insert into \"{schema_for(broken)}\".alembic_version values (42)"))
        db.session.commit()
    result = runner.invoke(args=["tenants", "migrate", "--no-progress", "--workers", "2"])
    assert result.exit_code == 1
    assert f"FAILED {schema_for(broken)}" in result.output
    with app.app_context():
        assert all(_revision(slug) == head("tenant") for slug in old)
        assert _revision(tenant.slug) == head("tenant")
        db.session.execute(sa.text(f'drop schema "{schema_for(broken)}" cascade'))
        db.session.execute(sa.text("delete from public.tenants where slug = :s"), {"s": broken})
        db.session.commit()
    again = runner.invoke(args=["tenants", "migrate", "--no-progress"])
    assert again.exit_code == 0, again.output
    assert " 0 upgraded" in again.output or again.output.startswith("0 upgraded")


def test_provisioned_schema_matches_the_models(app, tenant):
    """The head DDL that signup runs yields exactly the tables, columns and indexes of the models."""
    with app.app_context(), db.engine.connect() as conn:
        conn.exec_driver_sql(f'set local search_path to "{schema_for(tenant.slug)}"')
        tenant_tables = sa.MetaData()
        for table in db.metadata.sorted_tables:
            if table.schema == "tenant":
                table.to_metadata(tenant_tables, schema=None, referred_schema_fn=lambda *_: sa.schema.BLANK_SCHEMA)
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = [d for d in compare_metadata(ctx, tenant_tables)
                if not (d[0] == "remove_table" and d[1].name == "alembic_version")]
        conn.rollback()
    assert diff == []


def test_provisioning_stamps_head_and_starts_numbering_at_one(app):
    from tenants.context import tenant_context
    from tenants.provisioning import create_tenant, new_tenant_ref

    with app.app_context():
        ref = new_tenant_ref(f"fresh{int(time.time() * 1000) % 10**8}")
        with tenant_context(ref):
            create_tenant("Fresh")
            db.session.commit()
        assert _revision(ref.slug) == head("tenant")
        sequence = db.session.execute(sa.text(f'select last_value, is_called from "{ref.schema}".ticket_number_seq'))
        assert tuple(sequence.one()) == (1, False)  # the first ticket gets number 1


def test_the_tenant_ddl_renders_the_same_on_many_threads_at_once():
    """Two first signups in one fresh process rendered it at once; Alembic's module-wide proxies
    crossed and both answered 500 (KeyError 'script', then a schema without its tables)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from tenants.migrations import tenant_ddl

    start = threading.Barrier(4)

    def render(_: int) -> str:
        start.wait()
        return tenant_ddl.__wrapped__("head")  # uncached: each thread runs Alembic

    with ThreadPoolExecutor(4) as pool:
        rendered = list(pool.map(render, range(4)))  # a thread's exception is raised here
    assert len(set(rendered)) == 1 and "CREATE TABLE" in rendered[0]


def test_t0017_keeps_a_previous_webhook_secret_still_in_its_grace(app):
    """Only a secret whose grace runs on is carried into `previous_secrets`; an ended one is dropped."""
    schema = schema_for(f"hooks{int(time.time() * 1000) % 10**8}")
    with app.app_context():
        conn = db.session.connection()
        conn.exec_driver_sql(f'create schema "{schema}"')
        conn.exec_driver_sql(f'set local search_path to "{schema}"')
        conn.exec_driver_sql(tenant_ddl("t0016"))
        conn.exec_driver_sql(
            "insert into webhook_subscriptions (id, url, events, secret, previous_secret, previous_secret_expires_at)"
            " values (gen_random_uuid(), 'https://a.example/h', '{ticket.created}', 'now', 'before',"
            " now() + interval '1 hour'), (gen_random_uuid(), 'https://b.example/h', '{ticket.created}', 'now',"
            " 'ended', now() - interval '1 hour')")
        conn.exec_driver_sql("set local search_path to default")
        db.session.commit()
        assert upgrade_tenant(db.engine, schema)
        kept = dict(db.session.execute(sa.text(
            f'select url, previous_secrets from "{schema}".webhook_subscriptions')).all())
        db.session.execute(sa.text(f'drop schema "{schema}" cascade'))
        db.session.commit()
    assert [p["secret"] for p in kept["https://a.example/h"]] == ["before"] and kept["https://b.example/h"] == []
