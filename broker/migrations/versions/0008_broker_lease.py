"""The serving broker's lease (table broker_lease): a primary and a standby broker on one database.

One row per hall: which broker process holds the right to serve it (``holder``), the fencing
token (``epoch``, one more at every takeover) and until when the lease runs (``expires_at``, on the
database's own clock). Every write transaction of the serving broker locks its row ``FOR SHARE``
and checks the epoch, so a broker that lost the lease can never commit (docs/standby.md).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "broker_lease",
        sa.Column("hall", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("epoch", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("broker_lease")
