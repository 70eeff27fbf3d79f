"""Create, suspend and drop tenants.

A tenant is a registry row in `public` plus its own schema built at the head migration. Both
happen in the caller's transaction, so a signup that fails half-way leaves nothing behind. The
schema DDL is Alembic's own head rendering (see `migrations.tenant_head_ddl`), run as a single
batch under `SET LOCAL search_path`, which keeps provisioning well under a second.

A tenant placed on a shard other than the primary has its schema there and its registry row in
the primary: two transactions, the shard's committed first (see `tenants.database`). A schema of
the new slug already on that shard can only be left from a signup whose registry commit failed
(the registry row this transaction wrote holds the slug), so it is replaced.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, ProgrammingError

from tenants.context import TenantRef, current_tenant
from tenants.database import db, shard_engine
from tenants.migrations import tenant_head_ddl
from tenants.models import Tenant
from tenants.names import PRIMARY_SHARD, checked_schema, moved_schema, schema_for, slug_problem
from tenants.shards import roomiest_shard, shard_names


class SlugTaken(Exception):
    """The slug (or its schema) already belongs to a tenant."""


class TenantBusy(Exception):
    """Another command is moving or dropping the tenant."""

    def __init__(self, slug: str) -> None:
        super().__init__(f"{slug} is being moved or dropped by another command; try again when it ends")


def change_lock(slug: str) -> str:
    """Name the advisory lock (`hashtext` of it, in the primary) that lets one command at a time move or drop
    the tenant: a move holds it in its session, a drop in its transaction. A drop that met a move half done
    deleted the registry row while the move carried the schema across or put it back: the data outlived
    its tenant."""
    return f"tenant change {slug}"


# Called inside every transaction that suspends, reactivates or drops a tenant, so the app can
# drop what it caches about tenants and their keys once that transaction commits.
_registry_listeners: list[Callable[[str], None]] = []


def on_registry_change(listener: Callable[[str], None]) -> None:
    """Call `listener(tenant_id)` in every transaction that changes a tenant's status or drops it."""
    if listener not in _registry_listeners:
        _registry_listeners.append(listener)


def registry_changed(tenant_id: uuid.UUID | str) -> None:
    """Tell the listeners (`on_registry_change`) that this transaction changes the tenant's registry row."""
    for listener in _registry_listeners:
        listener(str(tenant_id))


def new_tenant_ref(slug: str) -> TenantRef:
    """Return the identity a new tenant will have, on the roomiest shard; enter it before `create_tenant`.

    Raises ValueError for a slug that is malformed or reserved, whichever caller let it through,
    and `NoRoom` when every shard is full.
    """
    problem = slug_problem(slug)
    if problem:
        raise ValueError(f"slug {slug!r}: {problem}")
    return TenantRef(id=str(uuid.uuid4()), slug=slug, schema=schema_for(slug), shard=roomiest_shard())


def create_tenant(name: str) -> Tenant:
    """Register the tenant in context and build its schema, in the current transaction."""
    ref = current_tenant()
    tenant = Tenant(id=uuid.UUID(ref.id), slug=ref.slug, name=name, schema_name=ref.schema, shard=ref.shard)
    db.session.add(tenant)
    try:
        with db.session.begin_nested():
            db.session.flush()
            conn = db.session.connection()  # the tenant's shard
            schema = checked_schema(ref.schema)
            if ref.shard != PRIMARY_SHARD:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
            conn.exec_driver_sql(f'SET LOCAL search_path TO "{schema}"')
            conn.exec_driver_sql(tenant_head_ddl())
            conn.exec_driver_sql("SET LOCAL search_path TO DEFAULT")
    except (IntegrityError, ProgrammingError) as exc:
        if "already exists" in str(exc.orig) or isinstance(exc, IntegrityError):
            raise SlugTaken(ref.slug) from exc
        raise
    return tenant


class BeingDropped(Exception):
    """The tenant's drop has begun (its files may be deleted already): it can only be dropped."""

    def __init__(self, slug: str) -> None:
        super().__init__(f"{slug}'s drop has begun and its files may be deleted already; run the drop again "
                         "to finish it")


def set_status(slug: str, status: str) -> Tenant | None:
    """Suspend or reactivate a tenant; returns None if there is no such tenant, raises BeingDropped for one
    whose drop has begun."""
    tenant = db.session.execute(sa.select(Tenant).where(Tenant.slug == slug).with_for_update()).scalar_one_or_none()
    if tenant is not None:
        if tenant.status == "dropping":
            raise BeingDropped(slug)
        tenant.status = status
        registry_changed(tenant.id)  # its keys' cached status is stale from the commit on
    return tenant


# What keeps a tenant's data outside its schema (the app's media storage) deletes it here: `on_drop`.
_DROPPERS: list[Callable[[str], object]] = []


def on_drop(dropper: Callable[[str], object]) -> None:
    """Make `dropper(tenant_id)` delete a tenant's data kept outside the database when it is dropped.

    It runs twice, before the drop and once the drop has committed (see `drop_tenant`), so it must
    be idempotent.
    """
    if dropper not in _DROPPERS:
        _DROPPERS.append(dropper)


def retire_tenant(slug: str) -> Tenant | None:
    """Ready a tenant for `drop_tenant`, in the caller's transaction: mark it `dropping`, once what a failed
    move left on other shards is dropped (each shard committed). None if there is no such tenant.

    Dropping, it answers no request and the relay passes it by (as if suspended), so the drop that
    follows may hold its schema's locks while it deletes the tenant's files: held on an active
    tenant, they stalled the relay's sweep of every tenant on the shard. Unlike a suspended tenant
    it cannot be reactivated (`set_status`): its files may be gone, so the only way on is the drop.
    A failure here changes nothing of the tenant's (what is dropped were copies nothing reads).
    Raises TenantBusy while a move of the tenant is under way, and UnknownShard when this process
    has no database for a shard the registry names.
    """
    tenant = _locked(slug)
    if tenant is None:
        return None
    placed = db.session.execute(sa.select(Tenant.shard).distinct()).scalars()
    for shard in sorted({tenant.shard, *placed} - set(shard_names())):
        shard_engine(shard)  # raises UnknownShard: a failed move may have left a copy there
    # A move that failed late leaves the fenced copy behind, one whose undo failed a copy on its target
    # (each for the next move of the tenant to drop), and there will be none.
    for shard in shard_names():
        if shard == tenant.shard:
            continue
        if shard == PRIMARY_SHARD:
            db.session.execute(sa.text(_drop_schemas(tenant)))
        else:
            with shard_engine(shard).begin() as conn:
                conn.exec_driver_sql(_drop_schemas(tenant))
    tenant.status = "dropping"
    registry_changed(tenant.id)
    return tenant


def drop_tenant(slug: str) -> str | None:
    """Delete a tenant (`retire_tenant` it first, and commit): its keys, its schema with all its data, and
    what it keeps elsewhere (`on_drop`). Returns its id, or None if there is no such tenant.

    Its schema's DROP takes the schema's locks, waiting for the transactions that use it, before
    the files are deleted: a DROP that failed after them (timed out behind a long job, its shard
    down) once left a live tenant without its files. A failure now leaves it `dropping`, to drop
    again. Once the caller has committed, it must call `drop_outside_data` again: a job the DROP
    waited for (a scan) may have stored a file before it. On a shard other than the primary the
    schema's drop commits before the registry row's (the drop can simply be run again).
    """
    tenant = _locked(slug)
    if tenant is None:
        return None
    if tenant.shard == PRIMARY_SHARD:
        db.session.execute(sa.text(_drop_schemas(tenant)))
        drop_outside_data(str(tenant.id))
    else:
        with shard_engine(tenant.shard).begin() as conn:
            conn.exec_driver_sql(_drop_schemas(tenant))
            drop_outside_data(str(tenant.id))
    db.session.delete(tenant)
    registry_changed(tenant.id)
    return str(tenant.id)


def _locked(slug: str) -> Tenant | None:
    """Take the tenant's change lock for this transaction (or raise TenantBusy), then read it."""
    locked = sa.func.pg_try_advisory_xact_lock(sa.func.hashtext(change_lock(slug)))
    if not db.session.execute(sa.select(locked)).scalar():
        raise TenantBusy(slug)
    return db.session.execute(sa.select(Tenant).where(Tenant.slug == slug)).scalar_one_or_none()


def _drop_schemas(tenant: Tenant) -> str:
    """The DROP of a tenant's schema and of its fenced copy (a move's), wherever either is."""
    schemas = (checked_schema(tenant.schema_name), moved_schema(str(tenant.id)))
    return "DROP SCHEMA IF EXISTS " + ", ".join(f'"{name}"' for name in schemas) + " CASCADE"


def drop_outside_data(tenant_id: str) -> None:
    """Run every `on_drop` dropper for the tenant: before its drop, and again once the drop has committed."""
    for dropper in _DROPPERS:
        dropper(tenant_id)


def all_tenants() -> list[Tenant]:
    """Return every tenant, oldest first."""
    return list(db.session.execute(sa.select(Tenant).order_by(Tenant.created_at)).scalars())
