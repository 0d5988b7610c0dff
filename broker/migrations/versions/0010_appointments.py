"""Appointments (预约): the bookings table, and the booking an appointment ticket was issued for.

A booking is keyed by its hall (``hall_id``, leading every key as in migration 0009: each hall's bookings are
its own) and its code (10 characters, broker/appointments.py). Its contact, when the citizen gave one,
is kept only masked (``contact_masked``) and as a salted scrypt hash (``contact_hash``); both go with the
booking when the hall's retention purges it. ``tickets.booking``/``tickets.slot_at`` mark an appointment ticket
(checked in on time) and the slot start the calling rule orders it by; NULL for every other ticket.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bookings",
        sa.Column("hall_id", sa.String(32), primary_key=True),
        sa.Column("code", sa.String(16), primary_key=True),
        sa.Column("hall", sa.String(128), nullable=False),
        sa.Column("service", sa.String(32), nullable=False),
        sa.Column("slot_day", sa.Date, nullable=False),
        sa.Column("slot_at", sa.DateTime, nullable=False),
        sa.Column("slot_end", sa.DateTime, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("booked_at", sa.DateTime, nullable=False),
        sa.Column("booked_by", sa.String(64)),
        sa.Column("contact_masked", sa.String(32)),
        sa.Column("contact_hash", sa.String(255)),
        sa.Column("ticket_id", sa.Integer),
        sa.Column("ticket_label", sa.String(16)),
        sa.Column("checked_in_at", sa.DateTime),
        sa.Column("late", sa.Boolean, nullable=False),
        sa.Column("ended_at", sa.DateTime),
    )
    op.create_index("ix_bookings_day_service", "bookings", ["hall_id", "slot_day", "service"])
    op.create_index("ix_bookings_state_day", "bookings", ["hall_id", "state", "slot_day"])
    # Nullable columns without a default: in-place ALTERs on SQLite and PostgreSQL alike (no table copy).
    op.add_column("tickets", sa.Column("booking", sa.String(16), nullable=True))
    op.add_column("tickets", sa.Column("slot_at", sa.DateTime, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("slot_at")
        batch.drop_column("booking")
    op.drop_index("ix_bookings_state_day", "bookings")
    op.drop_index("ix_bookings_day_service", "bookings")
    op.drop_table("bookings")
