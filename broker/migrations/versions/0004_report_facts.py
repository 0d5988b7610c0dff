"""The reports' per-visit facts of closed business days (table report_facts).

A monthly report of a busy hall parsed the four timestamps of every visit of the month
again on every run (1.1-1.8 s on SQLite, 0.5-1 s on PostgreSQL, for 164,000 visits).
broker/reports.py now keeps those facts for each business day whose visits have all
ended, once, and reads them back (docs/reports.md, "How it reads the database";
docs/benchmarks.md, section "Reports"). The primary key (business_day, visit_id) keeps a
period's facts together; on SQLite the table has no rowid, so they are stored in that
order. Downgrading drops the table: the facts are derived data, rebuilt on demand.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "report_facts",
        sa.Column("business_day", sa.Date, primary_key=True),
        sa.Column("visit_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("ticket_id", sa.Integer, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("service", sa.String(32), nullable=False),
        sa.Column("counter", sa.Integer),
        sa.Column("clerk", sa.String(32)),
        sa.Column("post", sa.String(1)),
        sa.Column("outcome", sa.String(16)),
        sa.Column("entered_ms", sa.BigInteger, nullable=False),
        sa.Column("ended_ms", sa.BigInteger),
        sa.Column("active_ms", sa.BigInteger),
        sa.Column("wait_ms", sa.BigInteger),
        sa.Column("first_wait_ms", sa.BigInteger),
        sa.Column("service_ms", sa.BigInteger),
        sa.Column("busy_ms", sa.BigInteger),
        sa.Column("elapsed_ms", sa.BigInteger),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("report_facts")
