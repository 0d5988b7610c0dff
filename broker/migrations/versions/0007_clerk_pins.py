"""Clerks' PINs as salted scrypt hashes (table clerk_pins), out of hall.toml.

hall.toml used to carry every clerk's PIN in plain text and shipped in the package. A PIN is
now set with ``queuehall clerks set-pin`` and only its hash is stored here
(``scrypt$n$r$p$salt$hash``, queuehall/pins.py). ``generation`` goes up by one each time an
administrator sets the PIN or unlocks the clerk: the broker reads the row at every sign-in,
and a lock counted under an older generation no longer applies. ``changed_at``/``changed_by``/
``change`` record the last administrative change (set, unlock, import).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "clerk_pins",
        sa.Column("clerk", sa.String(32), primary_key=True),
        sa.Column("pin_hash", sa.String(255), nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("changed_at", sa.DateTime, nullable=False),
        sa.Column("changed_by", sa.String(64), nullable=False),
        sa.Column("change", sa.String(16), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("clerk_pins")
