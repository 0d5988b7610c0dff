"""The db_url fixture gives every test an empty, private database on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, inspect, select
from sqlalchemy.engine import make_url

metadata = MetaData()
tickets = Table(
    "probe_tickets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("number", String(8), nullable=False),
    Column("note", String(64), nullable=False),
)


def test_create_table_and_read_back(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        # Empty database: a leftover table would mean databases are shared between tests.
        assert inspect(engine).get_table_names() == []
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(
                tickets.insert(),
                [{"number": "A001", "note": "请A001号到3号窗口"}, {"number": "B002", "note": "社保"}],
            )
        with engine.connect() as conn:
            rows = conn.execute(select(tickets.c.number, tickets.c.note).order_by(tickets.c.id)).all()
        # The Chinese text must survive the round trip (PostgreSQL is initialised with UTF8).
        assert [tuple(r) for r in rows] == [("A001", "请A001号到3号窗口"), ("B002", "社保")]
    finally:
        engine.dispose()


def test_backend_matches_parameter(db_url: str, request: pytest.FixtureRequest) -> None:
    backend = request.node.callspec.params["db_url"]
    engine = create_engine(db_url)
    try:
        assert engine.dialect.name == {"sqlite": "sqlite", "postgres": "postgresql"}[backend]
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def leaked_connections() -> Iterator[list[psycopg.Connection]]:
    """Connections a test leaves open on purpose; closed only after every db_url teardown has run."""
    leaked: list[psycopg.Connection] = []
    yield leaked
    for conn in leaked:
        conn.close()


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_open_connection_does_not_block_drop(
    leaked_connections: list[psycopg.Connection], db_url: str
) -> None:
    # A test that forgets to close a connection must not make the fixture's DROP DATABASE fail: the
    # fixture terminates it first. The connection stays open past this test's teardown (closed at module end).
    conninfo = make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = psycopg.connect(conninfo, autocommit=True)
    leaked_connections.append(conn)
    conn.execute("CREATE TABLE left_open (id integer)")
    row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()").fetchone()
    assert row is not None and row[0] == 1
