"""Everything about tenancy: registry, resolution, schema scoping, provisioning, migrations."""
