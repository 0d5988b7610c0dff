"""Shared test setup: headless Qt, python-escpos temp-dir hygiene, database URLs and an artifacts folder.

Fixtures:
    (autouse)     brokers verify the engine's dirty marks at every publication.
    db_url        SQLAlchemy URL of an empty database; runs each test on SQLite and on PostgreSQL.
    artifacts_dir tests/artifacts/ (gitignored): screenshots and rendered tickets for people to look at.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

# Must happen before anything imports PySide6: without a display Qt would abort on the xcb plugin.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# python-escpos' capabilities pickle: a per-user folder, the pickle built atomically before escpos is imported
# (kiosk/escpos_setup.py), so the test processes and the demo's never read a half-written one.
from queuehall.kiosk.escpos_setup import prepare_escpos

prepare_escpos()

import pytest  # noqa: E402  (after the environment above is set)
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.exc import SQLAlchemyError  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

PG_URL_ENV = "QUEUEHALL_TEST_PG_URL"
ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Yield the URL of a fresh, empty database; the test runs once per backend.

    sqlite:   a new file in tmp_path.
    postgres: a new database with a random name on the server from $QUEUEHALL_TEST_PG_URL (started by
              scripts/pg.sh / `make test`), dropped afterwards even if the test left connections open.
              Without that variable the test is skipped locally but fails when CI=true, so CI cannot pass
              without really testing PostgreSQL.
    """
    if request.param == "sqlite":
        yield f"sqlite+pysqlite:///{tmp_path / 'queuehall.db'}"
        return

    base = os.environ.get(PG_URL_ENV, "").strip()
    if not base:
        message = f"{PG_URL_ENV} is not set; run `make test` or `scripts/pg.sh start` and export its URL"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must test PostgreSQL: {message}", pytrace=False)
        pytest.skip(message)

    name = f"qh_test_{secrets.token_hex(6)}"
    # NullPool: no connection to the maintenance database outlives a statement, so nothing lingers.
    admin = create_engine(base, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        except SQLAlchemyError as exc:
            pytest.fail(f"cannot create a test database on {base} ({PG_URL_ENV}): {exc}", pytrace=False)
        try:
            yield make_url(base).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                # DROP DATABASE refuses while sessions are connected (e.g. an engine the test forgot to
                # dispose). The 5 s timeout (PostgreSQL >= 14) waits until each backend has really exited.
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                )
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Return tests/artifacts/ (created if needed, gitignored) for files people should look at after a run.

    Files are overwritten by the next run; give them names that say which test wrote them.
    """
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS_DIR


@pytest.fixture(autouse=True)
def _broker_checks_dirty_marks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every in-process broker of the tests checks, at each publication, that the engine marked
    every service and counter whose record changed (the broker publishes only those)."""
    from queuehall.broker import engine, server

    from tests.publication_checks import dirty_mark_check, index_check

    misses: list[str] = []
    monkeypatch.setattr(engine, "PICK_CHECKS", [index_check])  # and halls check their queue index at each call
    monkeypatch.setattr(server, "PUBLICATION_CHECKS", [dirty_mark_check(misses)])
    yield
    assert not misses, f"changed but not marked dirty, so not published: {sorted(set(misses))}"
