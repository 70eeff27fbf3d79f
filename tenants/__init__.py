"""Everything about tenancy: registry, resolution, schema scoping, provisioning, migrations.

The rest of the product uses what this module exports and nothing else from `tenants/`;
`tenants/` imports nothing from `app/`.
"""

from tenants.cli import init_app as init_cli
from tenants.cli import tenants as tenant_commands
from tenants.context import (
    TenantRef,
    current_tenant,
    current_tenant_or_none,
    forget_current_tenant,
    set_current_tenant,
    tenant_context,
)
from tenants.database import (
    TenantSession,
    UnknownShard,
    compile_for_tenant,
    db,
    engine_for,
    guard_checkouts,
    init_engines,
    keepalive_args,
    one_at_a_time,
    shadow_tenant_tables,
)
from tenants.models import ApiKey, Tenant
from tenants.names import PRIMARY_SHARD, RESERVED_SLUGS, SLUG_RULE, is_slug, schema_for, slug_problem
from tenants.probe import tenants_having
from tenants.provisioning import SlugTaken, create_tenant, new_tenant_ref, on_drop, on_registry_change
from tenants.resolution import (
    TenantPathMiddleware,
    active_tenant,
    active_tenants,
    requested_slug,
    tenant_is_active,
    tenant_moved,
)
from tenants.shards import NoRoom, check_shards, parse_capacities, parse_shards, shard_engines
from tenants.statements import TenantStatement, autocommit_connection, driver_errors_as_sqlalchemys

__all__ = [
    "PRIMARY_SHARD", "RESERVED_SLUGS", "SLUG_RULE", "ApiKey", "NoRoom", "SlugTaken", "Tenant",
    "TenantPathMiddleware", "TenantRef", "TenantSession", "TenantStatement", "UnknownShard",
    "active_tenant", "active_tenants", "autocommit_connection", "check_shards", "compile_for_tenant",
    "create_tenant", "current_tenant", "current_tenant_or_none", "db", "driver_errors_as_sqlalchemys",
    "engine_for", "forget_current_tenant", "guard_checkouts", "init_cli", "init_engines", "is_slug", "keepalive_args",
    "new_tenant_ref", "on_drop", "on_registry_change", "one_at_a_time", "parse_capacities", "parse_shards",
    "requested_slug", "schema_for", "set_current_tenant", "shadow_tenant_tables", "shard_engines",
    "slug_problem",
    "tenant_commands", "tenant_context", "tenant_is_active", "tenant_moved",
    "tenants_having",
]
