"""The tenant registry and the API-key index, both in the `public` schema.

An API key resolves to its tenant in one indexed lookup by its prefix; only a SHA-256 of the
whole key is stored (keys carry 256 random bits, so a slow hash buys nothing and costs every
request).
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from tenants.context import TenantRef
from tenants.database import db
from tenants.names import PRIMARY_SHARD, SCHEMA_RULE, SHARD_RULE, SLUG_RULE

# The database refuses a malformed slug or schema name too, and a schema that is not the slug's.
REGISTRY_NAME_CHECKS = (
    sa.CheckConstraint(f"slug ~ '^{SLUG_RULE}$'", name="slug_format"),
    sa.CheckConstraint(f"schema_name ~ '^{SCHEMA_RULE}$'", name="schema_name_format"),
    sa.CheckConstraint("schema_name = 'tenant_' || replace(slug, '-', '_')", name="schema_name_of_slug"),
    sa.CheckConstraint(f"shard ~ '^{SHARD_RULE}$'", name="shard_format"),
)


class Tenant(db.Model):
    __tablename__ = "tenants"
    __table_args__ = (
        sa.CheckConstraint("status in ('active', 'suspended', 'dropping')", name="status"),
        *REGISTRY_NAME_CHECKS,
        sa.Index("ix_tenants_shard", "shard"),
        {"schema": "public"},
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    slug: Mapped[str] = mapped_column(sa.String(40), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    schema_name: Mapped[str] = mapped_column(sa.String(63), unique=True)
    status: Mapped[str] = mapped_column(sa.String(16), default="active", server_default="active")
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())
    # The database (shard) that holds the tenant's schema; the registry itself stays in the primary.
    shard: Mapped[str] = mapped_column(sa.String(32), default=PRIMARY_SHARD, server_default=PRIMARY_SHARD)
    # See `TenantRef.txid_offset`; set when the tenant moves (`tenants.moves`).
    txid_offset: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")

    def ref(self) -> TenantRef:
        return TenantRef(id=str(self.id), slug=self.slug, schema=self.schema_name, shard=self.shard,
                         txid_offset=self.txid_offset)


class ApiKey(db.Model):
    __tablename__ = "api_keys"
    __table_args__ = (
        sa.CheckConstraint("role in ('admin', 'agent', 'requester')", name="role"),
        sa.Index("ix_api_keys_tenant", "tenant_id", "created_at"),
        sa.Index("ix_api_keys_created_by", "tenant_id", "created_by",
                 postgresql_where=sa.text("created_by is not null and revoked_at is null")),
        sa.Index("ix_api_keys_made_with", "made_with",
                 postgresql_where=sa.text("made_with is not null and revoked_at is null")),
        {"schema": "public"},
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), sa.ForeignKey("public.tenants.id", ondelete="CASCADE")
    )
    prefix: Mapped[str] = mapped_column(sa.String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(sa.String(64))
    name: Mapped[str] = mapped_column(sa.String(200))
    role: Mapped[str] = mapped_column(sa.String(16))
    # The tenant user the key acts as (audit "who", and whose tickets a requester key sees).
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    # The tenant user who made (or rotated) it, and the key they used, if any; none for the signup's and the
    # operator's keys. A key made for someone else ends when its maker is deactivated or stops being an
    # admin, and a revoked key takes the keys made with it along.
    created_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    made_with: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # Set when the key is rotated with a grace period: it works until then, alongside its successor.
    expires_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
