"""Migration t0012: public replies written under an internal note before they were refused."""

from __future__ import annotations

import sqlalchemy as sa

from tenants.migrations import upgrade_tenant
from tests.helpers import in_schema, tenant_schema_at


def test_upgrade_cuts_public_replies_loose_from_internal_notes(app):
    """A requester was shown the note's id as the reply's parent; every other thread stays as it was."""
    with tenant_schema_at(app, "t0011") as (engine, schema):
        with in_schema(engine, schema) as conn:
            ticket = conn.execute(sa.text("INSERT INTO tickets (title) VALUES ('t') RETURNING id")).scalar_one()
            ids = {}
            for seq, (name, parent, internal) in enumerate([
                ("note", None, True), ("public_under_note", "note", False), ("note_under_note", "note", True),
                ("public", None, False), ("public_under_public", "public", False),
                ("note_under_public", "public", True), ("public_under_note_reply", "note_under_note", False),
            ], start=1):
                ids[name] = conn.execute(sa.text(
                    "INSERT INTO messages (ticket_id, seq, parent_id, internal, body) "
                    "VALUES (:t, :seq, :parent, :internal, :name) RETURNING id"),
                    {"t": ticket, "seq": seq, "parent": ids.get(parent), "internal": internal, "name": name},
                ).scalar_one()
        assert upgrade_tenant(engine, schema) is True
        with in_schema(engine, schema) as conn:
            parents = dict(conn.execute(sa.text("SELECT body, parent_id FROM messages")).all())
    assert parents == {
        "note": None, "public_under_note": None, "note_under_note": ids["note"],
        "public": None, "public_under_public": ids["public"],
        "note_under_public": ids["public"], "public_under_note_reply": None,
    }
