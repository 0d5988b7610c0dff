"""Every record belongs to a hall: a ``hall_id`` column on every table, leading every key (docs/city.md).

Brokers of several halls may share one PostgreSQL database: ticket ids, visit ids, event sequence
numbers, counters, rule state, request replies, report facts, ratings, cases and clerks' PINs are
now counted and keyed per hall, so one hall's A001 and another's A001 are two rows, and no hall
reads another's queue. The records already in the database (a single hall's) get the hall id of
the configuration that opens the database first at this revision (``broker.storage.migrate``
passes it; ``main``, the single-hall default, otherwise). Table ``halls`` lists the halls.

PostgreSQL changes the tables in place (the new column's constant default is stored once, not
written into every row); SQLite, which cannot change a primary key, copies each table into its
new shape.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import context, op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

HALL = "hall_id"
# table -> (primary key after the hall id, unique constraints, indexes), each led by the hall id.
PLAN: dict[str, tuple[list[str], dict[str, list[str]], dict[str, list[str]]]] = {
    "tickets": (["id"], {"uq_ticket_number": ["business_day", "service", "number"]},
                {"ix_tickets_status_at": ["status", "status_at"], "ix_tickets_day_status": ["business_day", "status"]}),
    "visits": (["id"], {}, {"ix_visits_ticket_id": ["ticket_id"], "ix_visits_business_day": ["business_day"]}),
    "events": (["seq"], {}, {"ix_events_type_seq": ["type", "seq"], "ix_events_business_day": ["business_day"]}),
    "counter_state": (["number"], {}, {}),
    "hall_state": (["key"], {}, {}),
    "requests": (["client", "request_id"], {}, {"ix_requests_at": ["at"]}),
    "report_facts": (["business_day", "visit_id"], {}, {}),
    "ratings": (["id"], {"uq_ratings_visit": ["visit_id"]}, {"ix_ratings_business_day": ["business_day"]}),
    "cases": (["id"], {}, {"ix_cases_business_day": ["business_day"], "ix_cases_status": ["status"]}),
    "clerk_pins": (["clerk"], {}, {}),
}


def _hall_id() -> str:
    return str(context.config.attributes.get("hall_id") or "main")


def upgrade() -> None:
    hall = _hall_id()
    conn = op.get_bind()
    halls = op.create_table(
        "halls",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name_zh", sa.Text, nullable=False),
        sa.Column("name_en", sa.Text, nullable=False),
        sa.Column("registered_at", sa.DateTime, nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
    )
    had_records = any(conn.execute(sa.text(f"SELECT 1 FROM {t} LIMIT 1")).first() is not None
                      for t in ("tickets", "counter_state", "clerk_pins", "hall_state"))
    for table, plan in PLAN.items():
        _rekey(conn, table, *plan, hall=hall)
    if had_records:  # the hall whose records these are; its broker names it at its next start
        now = datetime.now(UTC).replace(tzinfo=None)
        op.bulk_insert(halls, [{"id": hall, "name_zh": hall, "name_en": hall, "registered_at": now,
                                "started_at": now}])


def downgrade() -> None:
    """Back to one hall per database: refused while the database holds more than one hall's records."""
    conn = op.get_bind()
    found = {r[0] for t in PLAN for r in conn.execute(sa.text(f"SELECT DISTINCT {HALL} FROM {t}"))}
    if len(found) > 1:
        raise RuntimeError(f"the database holds the records of {len(found)} halls ({', '.join(sorted(found))}); "
                           "a database before revision 0009 holds one hall's")
    for table, plan in PLAN.items():
        _rekey(conn, table, *plan, hall=None)
    op.drop_table("halls")


def _rekey(conn: sa.Connection, table: str, pk: list[str], uniques: dict[str, list[str]],
           indexes: dict[str, list[str]], *, hall: str | None) -> None:
    """Give ``table`` the hall id column leading its keys (``hall``: the id of its rows), or take it away (None)."""
    lead = [HALL] if hall is not None else []
    insp = sa.inspect(conn)
    for ix in insp.get_indexes(table):  # the token's unique index stays: tokens are unique across halls
        if ix["name"] and ix["name"] != "ix_tickets_token" and not ix["name"].startswith("sqlite_autoindex") \
                and not ix.get("duplicates_constraint"):  # PostgreSQL's index of a unique constraint
            op.drop_index(ix["name"], table_name=table)
    if conn.dialect.name == "sqlite":
        _copy_sqlite(conn, table, [*lead, *pk], {n: [*lead, *c] for n, c in uniques.items()}, hall)
    else:
        # PostgreSQL: in place; the new column's constant default is stored once, not written into every row.
        for uc in insp.get_unique_constraints(table):
            op.drop_constraint(str(uc["name"]), table, type_="unique")
        op.drop_constraint(str(insp.get_pk_constraint(table)["name"]), table, type_="primary")
        if hall is not None:
            op.add_column(table, sa.Column(HALL, sa.String(32), nullable=False, server_default=hall))
            op.alter_column(table, HALL, server_default=None)
        else:
            op.drop_column(table, HALL)
        op.create_primary_key(f"{table}_pkey", table, [*lead, *pk])
        for name, cols in uniques.items():
            op.create_unique_constraint(name, table, [*lead, *cols])
    for name, cols in indexes.items():
        op.create_index(name, table, [*lead, *cols])


def _copy_sqlite(conn: sa.Connection, table: str, pk: list[str], uniques: dict[str, list[str]],
                 hall: str | None) -> None:
    """SQLite cannot change a primary key: build the table anew, copy the rows, swap the tables."""
    insp = sa.inspect(conn)
    old = [c for c in insp.get_columns(table) if c["name"] != HALL]
    token = any(ix["name"] == "ix_tickets_token" for ix in insp.get_indexes(table))
    if token:
        op.drop_index("ix_tickets_token", table_name=table)
    new = f"_new_{table}"
    cols = [sa.Column(HALL, sa.String(32), nullable=False)] if hall is not None else []
    cols += [sa.Column(c["name"], c["type"], nullable=c["nullable"]) for c in old]
    args: list[Any] = [*cols, sa.PrimaryKeyConstraint(*pk)]
    args += [sa.UniqueConstraint(*c, name=n) for n, c in uniques.items()]
    kw = {"sqlite_with_rowid": False} if table == "report_facts" else {}
    op.create_table(new, *args, **kw)
    names = ", ".join(f'"{c["name"]}"' for c in old)
    if hall is not None:
        conn.execute(sa.text(f'INSERT INTO "{new}" ({HALL}, {names}) SELECT :hall, {names} FROM "{table}"'),
                     {"hall": hall})
    else:
        conn.execute(sa.text(f'INSERT INTO "{new}" ({names}) SELECT {names} FROM "{table}"'))
    op.drop_table(table)
    op.rename_table(new, table)
    if token:
        op.create_index("ix_tickets_token", table, ["token"], unique=True)
