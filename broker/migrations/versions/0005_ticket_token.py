"""Every ticket gets its page token (docs/web.md): an unguessable secret, unique.

The web gateway finds a ticket by the token in its page's address; tickets issued before this
migration have none (their pages do not exist). The unique index makes the lookup one index probe
and refuses a repeated token outright.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A nullable column without a default: an in-place ALTER on both SQLite and PostgreSQL (no table copy).
    op.add_column("tickets", sa.Column("token", sa.String(64), nullable=True))
    op.create_index("ix_tickets_token", "tickets", ["token"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_tickets_token", table_name="tickets")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("token")
