"""Index tickets by (status, status_at) instead of status alone.

Rebuilding the hall loads open tickets and recent no-shows; with only ``status``
indexed, every no-show in the history was read to check its time (a rebuild over a
year's history took over a second; docs/benchmarks.md).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tickets_status_at", "tickets", ["status", "status_at"])
    op.drop_index("ix_tickets_status", table_name="tickets")


def downgrade() -> None:
    op.create_index("ix_tickets_status", "tickets", ["status"])
    op.drop_index("ix_tickets_status_at", table_name="tickets")
