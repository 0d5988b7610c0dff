"""Many halls, one database (issue 18, docs/city.md): every record belongs to a hall.

* the hall id in hall.toml (``[hall] id``): validated, defaulted for a single hall, required once the
  database is shared;
* migration 0009 of a single-hall database made by the previous schema (0008): every row kept, given
  the hall id of the configuration that opens it, and the hall goes on where it was;
* two and three real brokers on loopback sharing one real PostgreSQL database under concurrent
  traffic from several clients: numbers, queues, day close and purges never mix, and the failure the
  issue reported (a second hall's A002 after the first's A001, then ``duplicate key "tickets_pkey"``)
  cannot happen.
"""

from __future__ import annotations

import threading
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from queuehall.broker import storage
from queuehall.broker.config import DEFAULT_HALL_ID, ConfigError, HallConfig, Hours, Period, parse_config
from queuehall.broker.engine import Hall
from queuehall.broker.storage import HallIdRequired, Store, load_hall, migrate, open_store
from sqlalchemy import func, insert, select, text
from sqlalchemy import inspect as sa_inspect

from queuehall.client import BrokerClient, CommandRefused
from queuehall.clock import ManualClock
from tests import broker_fixtures
from tests.broker_fixtures import BrokerThread, wait_until
from tests.hall_factory import PIN, TUESDAY, install_pins, local, small_config
from tests.test_storage import alembic, busy_morning, schema_diff

start_broker_fixture = broker_fixtures.start_broker_fixture
manual_clock_fixture = broker_fixtures.manual_clock_fixture

PREVIOUS_HEAD = "0008"  # the schema of a single-hall database before hall ids
pg_only = pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


def hall(hall_id: str, **kw: Any) -> HallConfig:
    """The small test hall under ``hall_id`` (named after it)."""
    cfg = small_config(**kw)
    return replace(cfg, hall_id=hall_id, hall_id_given=True, name=replace(cfg.name, zh=f"{hall_id}大厅"))


def rows(store: Store, table: Any, hall_id: str | None = None) -> list[Any]:
    with store.engine.connect() as conn:
        q = select(table)
        if hall_id is not None:
            q = q.where(table.c.hall_id == hall_id)
        return conn.execute(q).all()


# ---------------------------------------------------------------------------- the hall id in hall.toml


def base_toml() -> dict[str, Any]:
    from tests.test_config import minimal

    return minimal()


def test_a_hall_id_is_a_short_ascii_slug_and_defaults_for_a_single_hall() -> None:
    data = base_toml()
    cfg = parse_config(data, "hall.toml")
    assert (cfg.hall_id, cfg.hall_id_given) == (DEFAULT_HALL_ID, False)
    assert "id" not in cfg.to_dict()["hall"]  # an old file stays an old file
    data["hall"]["id"] = "dongcheng"
    cfg = parse_config(data, "hall.toml")
    assert (cfg.hall_id, cfg.hall_id_given) == ("dongcheng", True)
    assert parse_config(cfg.to_dict(), "again") == replace(cfg, source="again")
    for bad in ("东城", "Dongcheng", "1st", "dong cheng", "a" * 33, "dong_cheng", ""):
        data["hall"]["id"] = bad
        with pytest.raises(ConfigError) as err:
            parse_config(data, "hall.toml")
        assert err.value.key == "hall.id" and err.value.code in ("CONFIG_BAD_HALL_ID", "CONFIG_EMPTY")
        assert "/" in err.value.problem  # English / 中文
    data["hall"]["id"] = 7
    with pytest.raises(ConfigError) as err:
        parse_config(data, "hall.toml")
    assert err.value.code == "CONFIG_WRONG_TYPE"


def test_a_hall_without_an_id_is_refused_by_a_database_other_halls_share(db_url: str) -> None:
    single = open_store(db_url)  # a single hall: no id needed, its records are hall 'main'
    single.close()
    dongcheng = open_store(db_url, hall="dongcheng", hall_given=True)
    install_pins(dongcheng, hall("dongcheng"))
    dongcheng.close()
    with pytest.raises(HallIdRequired) as err:
        open_store(db_url)
    assert err.value.code == "HALL_ID_REQUIRED" and err.value.details["halls"] == ["dongcheng", "main"]
    assert "[hall]" in err.value.message_zh and "[hall] id" in err.value.message_en
    open_store(db_url, hall="xicheng", hall_given=True).close()  # a hall that names itself is welcome


def test_the_broker_command_says_which_key_to_set(tmp_path: Path, db_url: str) -> None:
    import subprocess
    import sys

    other = open_store(db_url, hall="dongcheng", hall_given=True)
    install_pins(other, hall("dongcheng"))
    other.close()
    out = subprocess.run([sys.executable, "-m", "queuehall.cli", "broker", "--insecure", "--db", db_url,
                          "--port", str(broker_fixtures.free_port_pair())],
                         capture_output=True, text=True, timeout=60, cwd=broker_fixtures.ROOT)
    assert out.returncode == 2, out.stderr
    assert "[hall] id" in out.stderr and "dongcheng" in out.stderr


# ---------------------------------------------------------------------------- migration of a single hall


def test_a_single_hall_database_of_the_previous_schema_migrates_with_every_record(tmp_path: Path,
                                                                                  db_url: str) -> None:
    # The records: a busy morning with a 差评 and its case, made by the engine on a scratch database...
    scratch = open_store(f"sqlite:///{tmp_path / 'scratch.db'}")
    cfg = small_config()
    install_pins(scratch, cfg)
    clock = ManualClock(local(TUESDAY, 9))
    h = load_hall(cfg, clock, scratch)
    busy_morning(h, clock)
    done = h.execute("finish", {"counter": 1})["ticket"]["label"]
    h.execute("rate", {"level": 1, "ticket": done})
    made = {t.name: [r._asdict() for r in rows(scratch, t)] for t in storage.metadata.sorted_tables}
    scratch.close()
    assert made["ratings"] and made["cases"] and made["clerk_pins"] and made["requests"] and made["counter_state"]
    # ...written as they were into a database of the previous head, the schema main had before hall ids.
    old = storage.make_engine(db_url)
    alembic(old, ("upgrade", PREVIOUS_HEAD))
    with old.begin() as conn:
        for t in storage.metadata.sorted_tables:
            if t.name in ("halls", "alembic_version") or not made[t.name]:
                continue
            # The columns the previous head had (later migrations add some, e.g. 0010's tickets.booking).
            known = {c["name"] for c in sa_inspect(conn).get_columns(t.name)}
            cols = [c for c in made[t.name][0] if c != "hall_id" and c in known]
            conn.execute(text(f"INSERT INTO {t.name} ({', '.join(cols)}) VALUES "
                              f"({', '.join(':' + c for c in cols)})"), [{c: r[c] for c in cols} for r in made[t.name]])
    old.dispose()

    s = open_store(db_url, hall="dongcheng", hall_given=True)  # migrates: the records become dongcheng's
    try:
        assert schema_diff(s) == []
        for t in storage.metadata.sorted_tables:
            if t.name == "halls":
                continue
            got = sorted((tuple(sorted(r._asdict().items())) for r in rows(s, t)), key=repr)
            want = sorted((tuple(sorted({**r, "hall_id": "dongcheng"}.items())) for r in made[t.name]), key=repr)
            assert got == want, t.name
        assert [r.id for r in rows(s, storage.halls)] == ["dongcheng"]
        # The hall goes on where it stopped: its queue, its next numbers, its clerks' PINs, its open case.
        again = load_hall(replace(cfg, hall_id="dongcheng", hall_id_given=True), ManualClock(local(TUESDAY, 10)), s)
        assert again.last_ticket_id == max(r["id"] for r in made["tickets"])
        nxt = again.execute("take_ticket", {"service": "P"})["ticket"]["label"]
        assert nxt == f"A{1 + max(r['number'] for r in made['tickets'] if r['service'] == 'P'):03d}"
        assert again.counters[2].clerk == "c2a"  # still signed in, as before the migration
        assert again.execute("sign_in", {"counter": 2, "clerk": "c2b", "pin": PIN, "takeover": True})["session"]
        assert len(again.open_cases()) == 1
        assert s.halls() == ["dongcheng"]
    finally:
        s.close()
    # A second hall joins the database and numbers from A001 beside it.
    x = open_store(db_url, hall="xicheng", hall_given=True)
    try:
        install_pins(x, hall("xicheng"))
        xh = load_hall(hall("xicheng"), ManualClock(local(TUESDAY, 10)), x)
        assert xh.queue("P") == [] and xh.last_ticket_id == 0
        assert xh.execute("take_ticket", {"service": "P"})["ticket"]["label"] == "A001"
        assert x.halls() == ["dongcheng", "xicheng"]
    finally:
        x.close()


def test_a_single_hall_database_without_a_configured_id_keeps_the_default(db_url: str) -> None:
    eng = storage.make_engine(db_url)
    alembic(eng, ("upgrade", PREVIOUS_HEAD))
    at = local(TUESDAY, 9).astimezone().replace(tzinfo=None)
    with eng.begin() as conn:
        conn.execute(text("INSERT INTO hall_state (key, value) VALUES ('retention_days', '{\"days\": 200}')"))
        conn.execute(text("INSERT INTO tickets (id, business_day, service, number, label, issued_at, status, "
                          "queue_service, queue_key, visit_id, recalls) VALUES (1, :d, 'P', 1, 'A001', :at, "
                          "'waiting', 'P', :at, 1, 0)"), {"d": TUESDAY, "at": at})
    migrate(eng)  # no configuration at hand: the single-hall default
    eng.dispose()
    s = open_store(db_url)  # an old hall.toml without [hall] id goes on working
    try:
        assert s.stored_retention() == 200 and s.halls() == [DEFAULT_HALL_ID]
        assert [r.hall_id for r in rows(s, storage.tickets)] == [DEFAULT_HALL_ID]
    finally:
        s.close()


# ---------------------------------------------------------------------------- several brokers, one database


@pytest.fixture
def city(start_broker: Callable[..., BrokerThread], db_url: str) -> Iterator[Callable[..., BrokerThread]]:
    """``city(hall_config)``: a real broker for that hall on the test's one database."""
    yield lambda cfg: start_broker(cfg, db_url=db_url)


def take(endpoint: str, service: str = "P") -> str:
    c = BrokerClient(endpoint, timeout=5.0)
    try:
        return c.request("take_ticket", service=service)["ticket"]["label"]
    finally:
        c.close()


@pg_only
def test_the_second_hall_numbers_its_own_tickets_and_the_first_goes_on(city: Callable[..., BrokerThread]) -> None:
    # The failure: hall 2 issued A002 after hall 1's A001, showed it in its queue, and hall 1's next
    # take failed with duplicate key "tickets_pkey".
    first = city(hall("dongcheng"))
    assert take(first.endpoint) == "A001"
    second = city(hall("xicheng"))
    assert take(second.endpoint) == "A001"
    assert take(first.endpoint) == "A002"  # no duplicate key
    assert take(second.endpoint) == "A002"
    assert [t.label for t in first.broker.hall.queue("P")] == ["A001", "A002"]  # type: ignore[union-attr]
    assert [t.label for t in second.broker.hall.queue("P")] == ["A001", "A002"]  # type: ignore[union-attr]
    for b in (first, second):
        store = b.store
        assert store is not None
        assert sorted(r.label for r in rows(store, storage.tickets, store.hall)) == ["A001", "A002"]
    # A restart reloads each hall's own queue and numbering only.
    first.restart()
    assert len(first.broker.hall.tickets) == 2 and take(first.endpoint) == "A003"  # type: ignore[union-attr]
    assert take(second.endpoint) == "A003"


class HallTraffic:
    """Several kiosks and two counters working one hall's broker at once; what was acknowledged."""

    def __init__(self, endpoint: str, kiosks: int = 3, takes: int = 12) -> None:
        self.endpoint, self.kiosks, self.takes = endpoint, kiosks, takes
        self.issued: list[str] = []
        self.called: list[str] = []
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._kiosk, args=(k,), daemon=True) for k in range(kiosks)]
        self.threads += [threading.Thread(target=self._counter, args=(n, clerk), daemon=True)
                         for n, clerk in ((1, "c1a"), (2, "c2a"))]

    def start(self) -> HallTraffic:
        for t in self.threads:
            t.start()
        return self

    def _kiosk(self, k: int) -> None:
        c = BrokerClient(self.endpoint, client_id=f"kiosk-{k}", timeout=5.0, retries=4)
        try:
            for i in range(self.takes):
                label = c.request("take_ticket", service="PH"[(i + k) % 2])["ticket"]["label"]
                with self.lock:
                    self.issued.append(label)
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            c.close()

    def _counter(self, number: int, clerk: str) -> None:
        c = BrokerClient(self.endpoint, client_id=f"counter-{number}", timeout=5.0, retries=4)
        try:
            c.request("sign_in", counter=number, clerk=clerk, pin=PIN)
            for _ in range(self.takes):
                try:
                    label = c.request("call_next", counter=number)["ticket"]["label"]
                except CommandRefused as err:
                    assert err.code == "QUEUE_EMPTY", err
                    continue
                with self.lock:
                    self.called.append(label)
                c.request("start", counter=number)
                c.request("finish", counter=number)
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            c.close()

    def join(self) -> None:
        for t in self.threads:
            t.join(120)
        assert not self.errors, self.errors


def numbered(labels: list[str]) -> dict[str, list[int]]:
    by: dict[str, list[int]] = {}
    for label in labels:
        by.setdefault(label[0], []).append(int(label[1:]))
    return {p: sorted(n) for p, n in by.items()}


@pg_only
@pytest.mark.parametrize("n_halls", [2, 3])
def test_halls_under_concurrent_traffic_never_mix(city: Callable[..., BrokerThread], manual_clock: ManualClock,
                                                  n_halls: int) -> None:
    ids = ["dongcheng", "xicheng", "haidian"][:n_halls]
    # The last hall closes its day at 12:30 (one morning session, close 60 min after), the others at 18:00.
    morning = Hours(weekly=tuple((Period(time(8, 30), time(11, 30)),) if i < 6 else () for i in range(7)),
                    chinese_calendar=True, closed_days=frozenset(), working_days=frozenset(),
                    makeup_hours=(Period(time(8, 30), time(11, 30)),))
    brokers = [city(hall(h, **({"hours": morning} if h == ids[-1] else {}))) for h in ids]
    traffic = [HallTraffic(b.endpoint).start() for b in brokers]
    for t in traffic:
        t.join()
    stores = {h: b.store for h, b in zip(ids, brokers, strict=True)}
    for h, b, t in zip(ids, brokers, traffic, strict=True):
        store = stores[h]
        assert store is not None
        # Every acknowledged ticket is stored once, under its own hall, numbered 1..n per service with no gap.
        mine = rows(store, storage.tickets, h)
        assert sorted(r.label for r in mine) == sorted(t.issued)
        assert numbered(t.issued) == {p: list(range(1, len(n) + 1)) for p, n in numbered(t.issued).items()}
        assert len(t.issued) == 3 * 12 and len(set(t.issued)) == len(t.issued)
        # Calls went to this hall's tickets only, each once; what is left waiting is this hall's own.
        assert len(set(t.called)) == len(t.called) and set(t.called) <= set(t.issued)
        hall_obj: Hall = b.broker.hall  # type: ignore[union-attr]
        waiting = sorted(x.label for s in ("P", "H") for x in hall_obj.queue(s))
        assert waiting == sorted(set(t.issued) - set(t.called))
        visits = rows(store, storage.visits, h)
        assert {v.ticket_id for v in visits} == {r.id for r in mine}
        finished = [v for v in visits if v.outcome == "finished"]
        assert len(finished) == len(t.called)
        events = rows(store, storage.events, h)
        assert [e.seq for e in sorted(events, key=lambda e: e.seq)] == list(range(1, len(events) + 1))
    with brokers[0].store.engine.connect() as conn:  # type: ignore[union-attr]
        per_hall = dict(conn.execute(select(storage.tickets.c.hall_id, func.count()).group_by(
            storage.tickets.c.hall_id)).all())
    assert per_hall == {h: 36 for h in ids}

    # Day close: at 12:30 the morning-only hall closes its day; the others' tickets keep waiting.
    open_before = {h: len(b.broker.hall.tickets) for h, b in zip(ids, brokers, strict=True)}  # type: ignore
    manual_clock.set(local(TUESDAY, 12, 31))
    last = brokers[-1]
    wait_until(lambda: last.broker.hall.closed_through == TUESDAY, 10, "the morning hall's day close")  # type: ignore
    store = stores[ids[-1]]
    assert store is not None
    wait_until(lambda: all(r.status not in ("waiting", "called", "serving")
                           for r in rows(store, storage.tickets, ids[-1])), 10, "its tickets closed")
    for h, b in zip(ids[:-1], brokers[:-1], strict=True):
        assert b.broker.hall.closed_through != TUESDAY  # type: ignore[union-attr]
        assert len(b.broker.hall.tickets) == open_before[h]  # type: ignore[union-attr]
        s = stores[h]
        assert s is not None
        assert not any(r.status == "closed_unserved" for r in rows(s, storage.tickets, h))
        assert not any(e.type == "day_closed" for e in rows(s, storage.events, h))


@pg_only
def test_a_purge_deletes_only_its_own_halls_records(city: Callable[..., BrokerThread], manual_clock: ManualClock,
                                                    db_url: str) -> None:
    a, b = city(hall("dongcheng")), city(hall("xicheng"))
    for bt in (a, b):
        take(bt.endpoint)
    a.stop()
    b.stop()
    later = TUESDAY + timedelta(days=400)
    store = open_store(db_url, hall="dongcheng", hall_given=True)
    try:
        counts = store.purge(later - timedelta(days=200), retention_days=190, today=later)
        assert counts["tickets"] == 0  # A001 is still waiting: open tickets stay
        with store.engine.begin() as conn:
            conn.execute(storage.tickets.update().values(status="finished"))
        counts = store.purge(later - timedelta(days=200), retention_days=190, today=later)
        assert counts["tickets"] == 1
        assert [r.hall_id for r in rows(store, storage.tickets)] == ["xicheng"]
        assert {r.hall_id for r in rows(store, storage.events)} == {"xicheng"}
        assert {r.hall_id for r in rows(store, storage.visits)} == {"xicheng"}
    finally:
        store.close()


def test_the_ids_of_halls_count_apart_on_one_database(db_url: str) -> None:
    """Ticket ids, visit ids and event numbers are per hall: the same numbers in two halls are two rows."""
    stores = [open_store(db_url, hall=h, hall_given=True) for h in ("dongcheng", "xicheng")]
    try:
        for s in stores:
            install_pins(s, hall(s.hall))
            h = load_hall(hall(s.hall), ManualClock(local(TUESDAY, 9)), s)
            for _ in range(3):
                h.execute("take_ticket", {"service": "P"})
        with stores[0].engine.connect() as conn:
            got = sorted(conn.execute(select(storage.tickets.c.hall_id, storage.tickets.c.id)).all())
        assert got == [(h, i) for h in ("dongcheng", "xicheng") for i in (1, 2, 3)]
        assert Tally(r.hall_id for r in rows(stores[0], storage.events)) == {"dongcheng": 3, "xicheng": 3}
        # The database refuses a row that would collide within a hall (the key leads with the hall id).
        with pytest.raises(Exception, match=r"(?i)unique|duplicate"), stores[0].engine.begin() as conn:
            conn.execute(insert(storage.events).values(hall_id="xicheng", seq=1, at=datetime(2026, 1, 1),
                                                       business_day=TUESDAY, type="x", data="{}"))
    finally:
        for s in stores:
            s.close()


# ---------------------------------------------------------------------------- reports per hall and for the city


def drive(h: Hall, clock: ManualClock, takes: int, service_minutes: int) -> None:
    """A morning: ``takes`` tickets, two counters serving them ``service_minutes`` each, a 差评 and a 好评."""
    for n, clerk in ((1, "c1a"), (2, "c2a")):
        h.execute("sign_in", {"counter": n, "clerk": clerk, "pin": PIN})
    for i in range(takes):
        h.execute("take_ticket", {"service": "PH"[i % 2]})
        clock.advance(minutes=1)
    for i in range(takes):
        counter = 1 if i % 3 else 2
        try:
            h.execute("call_next", {"counter": counter})
        except Exception:
            continue
        h.execute("start", {"counter": counter})
        clock.advance(minutes=service_minutes)
        done = h.execute("finish", {"counter": counter})["ticket"]["label"]
        if i < 2:
            h.execute("rate", {"level": 5 if i == 0 else 1, "ticket": done})


def two_halls(db_url: str) -> tuple[dict[str, Any], datetime]:
    """Halls dongcheng (busy, slow) and xicheng (quiet, quick) on one database; their stores."""
    stores = {}
    for h, takes, minutes in (("dongcheng", 12, 9), ("xicheng", 6, 3)):
        s = stores[h] = open_store(db_url, hall=h, hall_given=True)
        install_pins(s, hall(h))
        clock = ManualClock(local(TUESDAY, 9))
        drive(load_hall(hall(h), clock, s), clock, takes, minutes)
    return stores, local(TUESDAY, 16)


def test_a_halls_report_on_a_shared_database_equals_its_report_alone(tmp_path: Path, db_url: str) -> None:
    from queuehall.broker.reports import ReportBuilder

    stores, now = two_halls(db_url)
    try:
        for h, takes, minutes in (("dongcheng", 12, 9), ("xicheng", 6, 3)):
            alone = open_store(f"sqlite:///{tmp_path / f'{h}-alone.db'}")
            install_pins(alone, small_config())
            clock = ManualClock(local(TUESDAY, 9))
            drive(load_hall(small_config(), clock, alone), clock, takes, minutes)
            want = ReportBuilder(alone.engine, small_config()).build(TUESDAY, TUESDAY, "service", now).to_dict()
            got = ReportBuilder(stores[h].engine, hall(h)).build(TUESDAY, TUESDAY, "service", now).to_dict()
            assert got == want, h
            assert got["tickets"]["issued"] == takes
            for group in ("counter", "clerk", "day", "hour"):
                assert (ReportBuilder(stores[h].engine, hall(h)).build(TUESDAY, TUESDAY, group, now).to_dict()
                        == ReportBuilder(alone.engine, small_config()).build(TUESDAY, TUESDAY, group, now).to_dict())
            alone.close()
    finally:
        for s in stores.values():
            s.close()


def test_the_city_report_puts_the_halls_side_by_side_with_the_total_and_rankings(db_url: str) -> None:
    from queuehall.broker.reports import ReportBuilder
    from queuehall.broker.reports.city import build_city, city_csv, city_table

    stores, now = two_halls(db_url)
    engine = stores["dongcheng"].engine
    try:
        configs = {h: hall(h) for h in stores}
        rep = build_city(engine, configs, hall("dongcheng"), TUESDAY, TUESDAY, now)
        assert [r["hall"] for r in rep.halls] == ["dongcheng", "xicheng"]
        for row in rep.halls:  # every figure is the hall's own report's
            own = ReportBuilder(engine, configs[row["hall"]]).build(TUESDAY, TUESDAY, "service", now)
            assert rep.reports[row["hall"]].to_dict() == own.to_dict()
            assert (row["issued"], row["wait_avg_min"], row["same_day_rate"]) == (
                own.tickets["issued"], own.total["wait_avg_min"], own.completion["same_day_rate"])
            assert row["rated"] == 2 and row["good_rate"] == 0.5
        city, (d, x) = rep.city, rep.halls
        assert city["issued"] == d["issued"] + x["issued"] == 18
        assert city["served"] == d["served"] + x["served"] and city["visits"] == d["visits"] + x["visits"]
        assert city["sla_counted"] == d["sla_counted"] + x["sla_counted"] and city["rated"] == 4
        both = (d["wait_avg_min"] * d["sla_counted"] + x["wait_avg_min"] * x["sla_counted"]) / city["sla_counted"]
        assert city["wait_avg_min"] == pytest.approx(both, abs=0.02)
        assert min(d["wait_max_min"], x["wait_max_min"]) <= city["wait_median_min"] <= max(
            d["wait_max_min"], x["wait_max_min"])
        # The quiet, quick hall waits less: it leads the wait rankings; the ratings tie (1 and 1).
        assert [r["hall"] for r in rep.rankings["wait_avg"]] == ["xicheng", "dongcheng"]
        assert rep.rankings["wait_avg"][0]["rank"] == 1 and rep.rankings["wait_avg"][1]["rank"] == 2
        assert [r["rank"] for r in rep.rankings["satisfaction"]] == [1, 1]
        text = city_table(rep)
        assert "dongcheng" in text and "xicheng" in text and "全市" in text and "排名" in text
        lines = city_csv(rep).splitlines()
        assert len(lines) == 4 and lines[-1].startswith("all,全市合计")
    finally:
        for s in stores.values():
            s.close()


def test_queuehall_report_hall_all_on_the_city_configuration(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             db_url: str) -> None:
    import json

    from queuehall.broker.config import load_config

    from queuehall.cli import main

    city_dir = broker_fixtures.ROOT / "config" / "beijing-exit-entry"
    for h, takes in (("haidian", 5), ("xuanwu", 3)):
        cfg = load_config(city_dir / f"{h}.toml")
        s = open_store(db_url, hall=h, hall_given=True)
        install_pins(s, cfg)
        clock = ManualClock(local(TUESDAY, 9))
        hh = load_hall(cfg, clock, s)
        for _ in range(takes):
            hh.execute("take_ticket", {"service": "passport"})
        s.close()
    base = ["report", "--db", db_url, "--config-dir", str(city_dir), "--day", TUESDAY.isoformat()]
    assert main([*base, "--hall", "all", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(h["hall"], h["issued"]) for h in out["halls"]] == [("haidian", 5), ("xuanwu", 3)]
    assert out["halls"][0]["name_zh"] == "北京市公安局海淀分局出入境接待大厅"
    assert out["city"]["issued"] == 8 and set(out["rankings"]) == {"wait_avg", "wait_p90", "within_target",
                                                                   "same_day", "satisfaction"}
    assert main([*base, "--hall", "all"]) == 0
    assert "haidian" in capsys.readouterr().out
    assert main([*base, "--hall", "xuanwu", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["tickets"]["issued"] == 3
    assert main([*base, "--hall", "chaoyang"]) == 2
    assert "REPORT_UNKNOWN_HALL" in capsys.readouterr().err
    assert main([*base, "--hall", "all", "--format", "xlsx"]) == 2  # a workbook needs a file
    assert "REPORT_NEEDS_OUT" in capsys.readouterr().err
