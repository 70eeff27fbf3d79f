"""Tenancy keeps one public surface, and every schema name that reaches SQL is checked where it is used."""

from __future__ import annotations

import ast
import pkgutil
from pathlib import Path

import pytest

import tenants
from app.extensions import db
from tenants import migrations

ROOT = Path(__file__).resolve().parents[2]
SUBMODULES = {m.name for m in pkgutil.iter_modules(tenants.__path__)}


def _tenancy_imports(path: Path) -> list[str]:
    """Return the imports in `path` that reach past `tenants/__init__.py` into its modules."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("tenants."):
                found.append(f"{path.relative_to(ROOT)}: from {node.module} import ...")
            elif node.module == "tenants":
                found += [f"{path.relative_to(ROOT)}: from tenants import {a.name}" for a in node.names
                          if a.name in SUBMODULES]
        elif isinstance(node, ast.Import):
            found += [f"{path.relative_to(ROOT)}: import {a.name}" for a in node.names if a.name.startswith("tenants.")]
    return found


def test_the_product_uses_only_what_tenants_exports():
    offenders = [hit for path in [*sorted((ROOT / "app").rglob("*.py")), ROOT / "wsgi.py"]
                 for hit in _tenancy_imports(path)]
    assert offenders == []


BAD_NAMES = ['tenant_x"; select 1; --', "tenant_a\n", "tenant_UPPER", "tenant_\u0131x"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_migrations_refuse_names_that_are_not_tenant_schemas(app, name):
    with app.app_context():
        with pytest.raises(ValueError):
            migrations.upgrade_tenant(db.engine, name)
        with db.engine.connect() as conn, pytest.raises(ValueError):
            migrations.tenant_revision(conn, name)
        with pytest.raises(ValueError):
            migrations.schemas_at(db.engine, [name], migrations.head("tenant"))
