"""Report days: a hall's business day of report facts added up (docs/reports.md "How it reads the database").

``report_days`` holds the day's counts and sums by kind (JSON), ``report_day_times`` its waits and service
times per service and minute (counts and the exact values), so a month's report, or a city's over every hall,
reads about 31 rows per hall and kind instead of every visit; and an index of appointment tickets, so a report
finds out at once whether a period has any. Both are derived data: written by the reports
with the facts of final days, checked against the day's visit count on every report, dropped with the days a
purge deletes. Keyed by hall first, like every table since migration 0009.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "report_days",
        sa.Column("hall_id", sa.String(32), primary_key=True),
        sa.Column("business_day", sa.Date, primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("data", sa.Text, nullable=False),
    )
    op.create_table(
        "report_day_times",
        sa.Column("hall_id", sa.String(32), primary_key=True),
        sa.Column("business_day", sa.Date, primary_key=True),
        sa.Column("service", sa.String(32), primary_key=True),
        sa.Column("minute", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("waits", sa.Integer, nullable=False),
        sa.Column("services", sa.Integer, nullable=False),
        sa.Column("first_waits", sa.Integer, nullable=False),
        sa.Column("elapsed", sa.Integer, nullable=False),
        sa.Column("wait_values", sa.Text),
        sa.Column("service_values", sa.Text),
    )


    # Whether a period has appointment tickets, without reading its tickets (a city report asks per hall).
    op.create_index("ix_tickets_booking_day", "tickets", ["hall_id", "business_day"],
                    postgresql_where=sa.text("booking IS NOT NULL"), sqlite_where=sa.text("booking IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_tickets_booking_day", "tickets")
    op.drop_table("report_day_times")
    op.drop_table("report_days")
