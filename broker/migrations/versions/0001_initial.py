"""Initial schema: tickets, visits, events, counter state, rule state, request replies.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("business_day", sa.Date, nullable=False),
        sa.Column("service", sa.String(32), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("label", sa.String(16), nullable=False),
        sa.Column("priority", sa.String(32)),
        sa.Column("issued_at", sa.DateTime, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("queue_service", sa.String(32), nullable=False),
        sa.Column("queue_key", sa.DateTime, nullable=False),
        sa.Column("visit_id", sa.Integer, nullable=False),
        sa.Column("target_counter", sa.Integer),
        sa.Column("counter", sa.Integer),
        sa.Column("recalls", sa.Integer, nullable=False),
        sa.Column("issued_by", sa.String(64)),
        sa.Column("status_at", sa.DateTime),
        sa.UniqueConstraint("business_day", "service", "number", name="uq_ticket_number"),
    )
    op.create_index("ix_tickets_status", "tickets", ["status"])
    op.create_table(
        "visits",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("ticket_id", sa.Integer, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("business_day", sa.Date, nullable=False),
        sa.Column("service", sa.String(32), nullable=False),
        sa.Column("entered_at", sa.DateTime, nullable=False),
        sa.Column("target_counter", sa.Integer),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("first_called_at", sa.DateTime),
        sa.Column("last_called_at", sa.DateTime),
        sa.Column("calls", sa.Integer, nullable=False),
        sa.Column("serving_at", sa.DateTime),
        sa.Column("ended_at", sa.DateTime),
        sa.Column("outcome", sa.String(16)),
        sa.Column("counter", sa.Integer),
        sa.Column("clerk", sa.String(32)),
        sa.Column("post", sa.String(1)),
        sa.Column("out_of_order", sa.Text),
    )
    op.create_index("ix_visits_ticket_id", "visits", ["ticket_id"])
    op.create_index("ix_visits_business_day", "visits", ["business_day"])
    op.create_table(
        "events",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("business_day", sa.Date, nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("ticket_id", sa.Integer),
        sa.Column("service", sa.String(32)),
        sa.Column("counter", sa.Integer),
        sa.Column("clerk", sa.String(32)),
        sa.Column("data", sa.Text, nullable=False),
    )
    op.create_index("ix_events_business_day", "events", ["business_day"])
    op.create_index("ix_events_type_seq", "events", ["type", "seq"])
    op.create_table(
        "counter_state",
        sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("clerk", sa.String(32)),
        sa.Column("post", sa.String(1)),
        sa.Column("session", sa.String(32)),
        sa.Column("pause_reason", sa.String(32)),
        sa.Column("ticket_id", sa.Integer),
        sa.Column("since", sa.DateTime),
    )
    op.create_table(
        "hall_state",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "requests",
        sa.Column("client", sa.String(64), primary_key=True),
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("reply", sa.Text, nullable=False),
    )
    op.create_index("ix_requests_at", "requests", ["at"])


def downgrade() -> None:
    for table in ("requests", "hall_state", "counter_state", "events", "visits", "tickets"):
        op.drop_table(table)
