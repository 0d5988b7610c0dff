"""好差评 (docs/evaluation.md): the ratings of finished visits and the follow-up cases of 差评.

One rating per visit (unique visit_id), with the visit's service, counter, clerk and post copied so the
reports and the province's daily export read one table. A case per 不满意/非常不满意, with its due day in
working days, the call back (回访), the finding and the rectification.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ratings",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("visit_id", sa.Integer, nullable=False, unique=True),
        sa.Column("ticket_id", sa.Integer, nullable=False),
        sa.Column("label", sa.String(16), nullable=False),
        sa.Column("business_day", sa.Date, nullable=False, index=True),
        sa.Column("service", sa.String(32), nullable=False),
        sa.Column("counter", sa.Integer),
        sa.Column("clerk", sa.String(32)),
        sa.Column("post", sa.String(1)),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("indicators", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("is_default", sa.Boolean, nullable=False),
        sa.Column("rated_at", sa.DateTime, nullable=False),
        sa.Column("visit_ended_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "cases",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("rating_id", sa.Integer, nullable=False),
        sa.Column("visit_id", sa.Integer, nullable=False),
        sa.Column("label", sa.String(16), nullable=False),
        sa.Column("business_day", sa.Date, nullable=False, index=True),
        sa.Column("service", sa.String(32), nullable=False),
        sa.Column("counter", sa.Integer),
        sa.Column("clerk", sa.String(32)),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("opened_at", sa.DateTime, nullable=False),
        sa.Column("due_day", sa.Date, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("callback_at", sa.DateTime),
        sa.Column("callback_note", sa.Text, nullable=False),
        sa.Column("finding", sa.Text, nullable=False),
        sa.Column("rectification", sa.Text, nullable=False),
        sa.Column("closed_at", sa.DateTime),
        sa.Column("closed_by", sa.String(64)),
    )


def downgrade() -> None:
    op.drop_table("cases")
    op.drop_table("ratings")
