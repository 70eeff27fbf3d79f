"""Teams keep the place in their rotation of the member who got the last round-robin ticket (when they
joined), so the rotation goes on from there once that member has left the team: it started again at
the first member, who got a second turn before the rest had theirs.

Revision ID: t0020
Revises: t0019
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "t0020"
down_revision = "t0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("teams", sa.Column("last_assigned_place", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("teams", "last_assigned_place")
