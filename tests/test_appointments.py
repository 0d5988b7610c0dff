"""Appointments (预约, issue 19): slots from the hall's hours and calendar, bookings with codes, check-in, the
calling rule on the simulated clock, booking no-shows at the day's close, and durability.

docs/calling-rules.md "Appointments" is the specification; its worked example is replayed here. The engine
tests run on a hall in memory; the wire, restart and kill -9 tests on a real broker over loopback, on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from queuehall.broker import storage
from queuehall.broker.appointments import (
    ALPHABET,
    code_problem,
    contact_check,
    contact_matches,
    hash_contact,
    mask_contact,
    new_code,
    new_contact_key,
    normalise_code,
    normalise_contact,
)
from queuehall.broker.config import Appointments, Hours, load_config, parse_config
from queuehall.broker.engine import HALL_QUERIES, Hall
from queuehall.broker.model import Event
from queuehall.broker.storage import Store, load_hall, open_store
from sqlalchemy import select

from queuehall.client import BrokerClient, CommandRefused
from queuehall.clock import ManualClock
from queuehall.errors import HallError
from queuehall.guesses import WrongCodes
from queuehall.protocol import Request
from tests import broker_fixtures
from tests.broker_fixtures import BrokerThread
from tests.hall_factory import DAY, TUESDAY, install_pins, local, memory_pins, small_config

manual_clock_fixture = broker_fixtures.manual_clock_fixture
start_broker_fixture = broker_fixtures.start_broker_fixture
broker_process_fixture = broker_fixtures.broker_process_fixture
hall_config_fixture = broker_fixtures.hall_config_fixture

WEDNESDAY = TUESDAY + timedelta(days=1)
NATIONAL_DAY = date(2026, 10, 1)  # 国庆节, a Thursday: closed by the national calendar


def appt_config(**kw: Any):
    """small_config with bookings for P (and H): 30-minute slots of 4, half kept for walk-ins (2 bookable)."""
    rules = Appointments(enabled=True, slot_minutes=30, slot_capacity=4, walkin_share=0.5,
                         checkin_before_minutes=15, checkin_after_minutes=10, book_ahead_days=14, streak=2)
    cfg = small_config(appointments=replace(rules, **kw))
    services = tuple(replace(s, appointments=False) if s.code == "FEE" else s for s in cfg.services)
    return replace(cfg, services=services)


class Bench:
    """A hall in memory on a manual clock, recording its events."""

    def __init__(self, start: datetime, config: Any = None) -> None:
        self.clock = ManualClock(start)
        self.config = config or appt_config()
        self.hall = Hall(self.config, self.clock, pins=memory_pins(self.config))
        self.events: list[Event] = []
        self.hall.listeners.append(self.events.append)

    def do(self, command: str, **args: Any) -> dict[str, Any]:
        if command in HALL_QUERIES:
            return self.hall.query(command, args)
        return self.hall.execute(command, args)

    def at(self, day: date, hh: int, mm: int = 0) -> None:
        self.clock.set(local(day, hh, mm).astimezone(UTC))

    def refused(self, error: str, command: str, **args: Any) -> HallError:
        """``command`` is refused with ``code`` in both languages, and nothing changed: no ticket, no booking,
        no event."""
        before = (dict(self.hall.tickets), dict(self.hall.numbers), {k: replace(b) for k, b in
                                                                     self.hall.booking_records.items()},
                  len(self.events), self.hall.last_ticket_id)
        with pytest.raises(HallError) as info:
            self.do(command, **args)
        err = info.value
        assert err.code == error, err
        assert err.message_zh and err.message_en and "{" not in err.message_zh + err.message_en
        after = (dict(self.hall.tickets), dict(self.hall.numbers), dict(self.hall.booking_records), len(self.events),
                 self.hall.last_ticket_id)
        assert after == before
        return err

    def sign_in(self, counter: int = 1, clerk: str = "c1a") -> None:
        self.do("sign_in", counter=counter, clerk=clerk, pin="1234")

    def serve_next(self, counter: int = 1) -> tuple[str, str]:
        """Call the next ticket at ``counter``, serve and finish it; the label and the rule that chose it."""
        got = self.do("call_next", counter=counter)
        rule = next(e.data["rule"] for e in reversed(self.events) if e.type == "ticket_called")
        self.do("start", counter=counter)
        self.do("finish", counter=counter)
        return got["ticket"]["label"], rule


# ---------------------------------------------------------------------------- codes and contacts


def test_codes_tell_a_typo_from_another_hall_and_use_no_look_alikes() -> None:
    code = new_code("A hall")
    assert len(code) == 10 and set(code) <= set(ALPHABET)
    assert not set("01OIL") & set(ALPHABET)
    assert code_problem(code, "A hall") is None
    # Every single mistyped character, and every swap of two different neighbours, is caught.
    for i in range(10):
        for c in ALPHABET:
            if c != code[i]:
                assert code_problem(code[:i] + c + code[i + 1:], "A hall") is not None
        if i < 9 and code[i] != code[i + 1]:
            swapped = code[:i] + code[i + 1] + code[i] + code[i + 2:]
            assert code_problem(swapped, "A hall") == "invalid"
    # Another hall's well-formed codes: told apart by the hall tag (1 in 31 looks like ours by chance).
    others = [new_code("Another hall") for _ in range(300)]
    assert sum(code_problem(c, "A hall") == "other_hall" for c in others) > 250
    assert normalise_code(f" queuehall:booking:{code[:4].lower()}-{code[4:]} ") == code
    assert len({new_code("A hall") for _ in range(2000)}) == 2000


def test_a_contact_is_kept_masked_and_hashed_only() -> None:
    assert normalise_contact("+86 138-1234-5678") == "13812345678"
    assert normalise_contact("11010519491231002x") == "11010519491231002X"
    assert normalise_contact("12345") is None and normalise_contact("010-12345678") is None
    assert mask_contact("13812345678") == "138****5678"
    assert mask_contact("11010519491231002X") == "110***********002X"
    key = new_contact_key()
    stored = hash_contact("13812345678", key)
    assert stored.startswith("hmac-sha256$") and "13812345678" not in stored and key.hex() not in stored
    assert stored != hash_contact("13812345678", key)  # a salt of its own per booking: two bookings unlinkable
    assert contact_matches("13812345678", stored, key) and not contact_matches("13812345679", stored, key)
    assert not contact_matches("13812345678", "not a hash", key)
    # Under another key (the hall's key file replaced or lost) the contact cannot be checked: said so, not a
    # mismatch; and whoever holds the database without the key cannot test a guess against it.
    other = new_contact_key()
    assert contact_check("13812345678", stored, other) == "unknown_key"
    assert contact_check("13812345678", stored, key) == "match"
    assert contact_check("13812345679", stored, key) == "mismatch"


def test_a_contact_hashed_with_scrypt_by_an_earlier_version_is_still_checked() -> None:
    salt = bytes(range(16))
    digest = hashlib.scrypt(b"13812345678", salt=salt, n=2**4, r=4, p=1, dklen=32).hex()
    stored = f"scrypt${2**4}$4$1${salt.hex()}${digest}"
    assert contact_check("13812345678", stored, new_contact_key()) == "match"
    assert contact_check("13812345679", stored, new_contact_key()) == "mismatch"


# ---------------------------------------------------------------------------- configuration


def test_the_default_hall_and_the_toml_round_trip_carry_the_appointment_settings() -> None:
    cfg = load_config(broker_fixtures.DEFAULT_CONFIG)
    offered = {s.code: cfg.booking_rules(s) for s in cfg.services if cfg.booking_rules(s)[0]}
    assert offered == {"passport": (True, 30, 2), "hk_macao": (True, 30, 2)}
    again = parse_config(cfg.to_dict(), "round trip")
    assert again.appointments == cfg.appointments and again.services == cfg.services
    data = cfg.to_dict()
    data["appointments"]["walkin_share"] = 1.5
    with pytest.raises(Exception) as info:
        parse_config(data, "bad")
    assert "appointments.walkin_share" in str(info.value)


# ---------------------------------------------------------------------------- slots


def test_slots_follow_the_hours_the_lunch_break_and_the_calendar() -> None:
    b = Bench(local(TUESDAY, 8).astimezone(UTC))
    slots = b.do("slots", service="P", date=WEDNESDAY.isoformat())["slots"]
    starts = [s["start"][11:] for s in slots]
    # 08:30-11:30 and 13:30-17:00: six and seven half hours; none between 11:30 and 13:30.
    assert starts == ["08:30", "09:00", "09:30", "10:00", "10:30", "11:00",
                      "13:30", "14:00", "14:30", "15:00", "15:30", "16:00", "16:30"]
    assert slots[5]["end"].endswith("11:30") and slots[-1]["end"].endswith("17:00")
    assert {(s["capacity"], s["booked"], s["free"], s["bookable"]) for s in slots} == {(2, 0, 2, True)}
    assert b.do("slots", service="P", date="2026-11-29")["slots"] == []  # a Sunday
    assert b.do("slots", service="P", date=NATIONAL_DAY.isoformat())["slots"] == []  # a public holiday
    # 45-minute slots and a capacity of 10 with a fifth kept for walk-ins: 8 bookable, the last slot that fits.
    b2 = Bench(local(TUESDAY, 8).astimezone(UTC), appt_config(slot_minutes=45, slot_capacity=10, walkin_share=0.2))
    slots = b2.do("slots", service="H", date=WEDNESDAY.isoformat())["slots"]
    assert [s["start"][11:] for s in slots] == ["08:30", "09:15", "10:00", "10:45", "13:30", "14:15", "15:00",
                                                 "15:45"]
    assert slots[0]["capacity"] == 8
    b.refused("BOOKING_NOT_OFFERED", "slots", service="FEE", date=WEDNESDAY.isoformat())
    b.refused("BAD_REQUEST", "slots", service="P", date="25 November")


def test_booking_refusals_leave_nothing_booked() -> None:
    b = Bench(local(TUESDAY, 10).astimezone(UTC))
    err = b.refused("SLOT_CLOSED", "book", service="P", slot="2026-11-25T12:00")  # the lunch break
    assert "午休" in err.message_zh and "lunch break" in err.message_en
    b.refused("SLOT_CLOSED", "book", service="P", slot="2026-10-01T09:00")  # 国庆节
    b.refused("SLOT_CLOSED", "book", service="P", slot="2026-11-29T09:00")  # a Sunday
    b.refused("SLOT_CLOSED", "book", service="P", slot="2026-11-25T17:00")  # after closing
    b.refused("SLOT_UNKNOWN", "book", service="P", slot="2026-11-25T10:10")
    b.refused("SLOT_PAST", "book", service="P", slot="2026-11-24T10:00")  # started now
    b.refused("SLOT_PAST", "book", service="P", slot="2026-11-24T08:30")
    b.refused("SLOT_TOO_FAR", "book", service="P", slot="2026-12-09T09:00")  # 15 days ahead
    b.refused("BOOKING_NOT_OFFERED", "book", service="FEE", slot="2026-11-25T09:00")
    b.refused("UNKNOWN_SERVICE", "book", service="NOPE", slot="2026-11-25T09:00")
    b.refused("BAD_CONTACT", "book", service="P", slot="2026-11-25T09:00", contact="12345")
    b.refused("BAD_REQUEST", "book", service="P", slot="tomorrow at nine")
    assert not b.hall.booking_records
    # A full slot: 2 bookable places of P at 10:30; H's are its own.
    first = b.do("book", service="P", slot="2026-11-24T10:30")["booking"]
    b.do("book", service="P", slot="2026-11-24T10:30")
    b.do("book", service="H", slot="2026-11-24T10:30")
    b.refused("SLOT_FULL", "book", service="P", slot="2026-11-24T10:30")
    assert b.do("slots", service="P", date="2026-11-24")["slots"][4] == {
        "start": "2026-11-24T10:30", "end": "2026-11-24T11:00", "capacity": 2, "booked": 2, "free": 0,
        "bookable": True}
    # Cancelling frees the place; a cancelled booking cannot be cancelled again or checked in.
    assert b.do("unbook", code=first["code"])["booking"]["state"] == "cancelled"
    b.do("book", service="P", slot="2026-11-24T10:30")
    b.refused("BOOKING_CANCELLED", "unbook", code=first["code"])
    b.at(TUESDAY, 10, 25)
    b.refused("BOOKING_CANCELLED", "checkin", code=first["code"])


def test_a_booking_reply_carries_code_qr_and_masked_contact_and_events_carry_neither() -> None:
    b = Bench(local(TUESDAY, 9).astimezone(UTC))
    booking = b.do("book", service="P", slot="2026-11-25T10:00", contact="138 1234 5678")["booking"]
    assert booking["qr"] == f"queuehall:booking:{booking['code']}"
    assert booking["contact_masked"] == "138****5678"
    assert booking["service_name"] == {"zh": "P业务", "en": "P service"}
    assert (booking["slot"], booking["slot_end"], booking["state"]) == ("2026-11-25T10:00", "2026-11-25T10:30",
                                                                        "booked")
    ev = b.events[-1]
    assert ev.type == "booking_made" and ev.service == "P"
    text = repr(ev.data)
    assert booking["code"] not in text and "5678" not in text and "hmac" not in text
    assert "hmac" not in repr(booking)
    assert b.hall.booking_records[booking["code"]].contact_hash.startswith("hmac-sha256$")


def test_the_qr_carries_the_booking_page_when_the_public_address_is_known_and_checkin_takes_both() -> None:
    """Issue 19: a phone's camera opens what the QR carries, so with the hall's public address known it is the
    booking's page (/b/CODE); the kiosk's scanner, ``checkin``, ``unbook`` and ``booking`` take it as they take
    ``queuehall:booking:CODE``."""
    b = Bench(local(TUESDAY, 9, 50).astimezone(UTC), replace(appt_config(), public_base_url="https://q.example.cn"))
    first = b.do("book", service="P", slot="2026-11-24T10:00")["booking"]
    second = b.do("book", service="P", slot="2026-11-24T10:00")["booking"]
    assert first["qr"] == f"https://q.example.cn/b/{first['code']}"
    assert normalise_code(first["qr"]) == first["code"] == normalise_code(f"queuehall:booking:{first['code']}")
    assert normalise_code(f"http://10.0.0.5:8080/hall/b/{first['code'].lower()}") == first["code"]
    assert b.do("booking", code=first["qr"])["booking"]["code"] == first["code"]
    assert b.do("checkin", code=first["qr"])["ticket"]["appointment"] is True
    assert b.do("checkin", code=f"queuehall:booking:{second['code']}")["ticket"]["appointment"] is True
    b.refused("BOOKING_CODE_INVALID", "checkin", code="https://q.example.cn/t/" + first["code"])  # not a booking


# ---------------------------------------------------------------------------- check-in


def test_checkin_refusals_issue_no_ticket() -> None:
    b = Bench(local(TUESDAY, 9).astimezone(UTC))
    today = b.do("book", service="P", slot="2026-11-24T10:00", contact="13812345678")["booking"]["code"]
    tomorrow = b.do("book", service="P", slot="2026-11-25T10:00")["booking"]["code"]
    err = b.refused("BOOKING_TOO_EARLY", "checkin", code=today)
    assert "09:45" in err.message_zh and "09:45" in err.message_en
    b.at(TUESDAY, 9, 45)
    b.refused("BOOKING_WRONG_DAY", "checkin", code=tomorrow)
    typo = today[:3] + ("2" if today[3] != "2" else "3") + today[4:]
    err = b.refused("BOOKING_CODE_INVALID", "checkin", code=typo)
    assert "核对" in err.message_zh and "check" in err.message_en
    b.refused("BOOKING_CODE_INVALID", "checkin", code="HELLO")
    b.refused("BOOKING_NOT_FOUND", "checkin", code=new_code(b.hall.hall_identity()))  # well formed, not booked
    other = Bench(local(TUESDAY, 9).astimezone(UTC), replace(appt_config(), name=replace(
        appt_config().name, zh="另一个大厅")))
    # A random part whose hall tags differ (30 in 31 do; one in 31 would pass for ours and be BOOKING_NOT_FOUND).
    part = next(r for r in (f"{c}{c}{c}{c}{c}{c}{c}{c}" for c in ALPHABET)
                if new_code(other.hall.hall_identity(), r)[8] != new_code(b.hall.hall_identity(), r)[8])
    other.hall.code_source = lambda: part
    foreign = other.do("book", service="P", slot="2026-11-24T10:00")["booking"]["code"]
    assert code_problem(foreign, other.hall.hall_identity()) is None
    err = b.refused("BOOKING_WRONG_HALL", "checkin", code=foreign)
    assert "本大厅" in err.message_zh and "another hall" in err.message_en
    b.refused("BOOKING_CONTACT_MISMATCH", "checkin", code=today, contact="13900000000")
    got = b.do("checkin", code=today.lower(), contact="13812345678")
    assert got["late"] is False and got["ticket"]["appointment"] is True
    assert got["booking"]["state"] == "checked_in" and got["booking"]["ticket"] == got["ticket"]["label"]
    err = b.refused("BOOKING_ALREADY_CHECKED_IN", "checkin", code=today)
    assert got["ticket"]["label"] in err.message_zh
    b.refused("BOOKING_ALREADY_CHECKED_IN", "unbook", code=today)
    assert [e.type for e in b.events[-2:]] == ["ticket_issued", "booking_checked_in"]


def test_a_late_arrival_gets_a_normal_ticket_and_an_early_one_waits_with_the_walk_ins() -> None:
    b = Bench(local(TUESDAY, 8, 40).astimezone(UTC))
    late = b.do("book", service="P", slot="2026-11-24T09:00")["booking"]["code"]
    early = b.do("book", service="P", slot="2026-11-24T09:30")["booking"]["code"]
    b.at(TUESDAY, 9, 10)  # 10 minutes after 09:00: still on time
    b.at(TUESDAY, 9, 11)
    walk_in = b.do("take_ticket", service="P")["ticket"]["label"]
    got = b.do("checkin", code=late)
    assert got["late"] is True and "appointment" not in got["ticket"]
    assert got["booking"]["late"] is True and got["ahead"] == 1
    b.at(TUESDAY, 9, 15)  # 15 minutes before 09:30
    appt = b.do("checkin", code=early)
    assert appt["late"] is False and appt["ticket"]["slot"] == "2026-11-24T09:30"
    b.sign_in()
    # Before 09:30 the early one is a walk-in by its check-in time; the late one always is.
    assert b.serve_next() == (walk_in, "fifo")
    assert b.serve_next() == (got["ticket"]["label"], "fifo")
    assert b.serve_next() == (appt["ticket"]["label"], "fifo")


def test_a_late_checkin_follows_the_walk_in_rules() -> None:
    b = Bench(local(TUESDAY, 10).astimezone(UTC))
    code = b.do("book", service="P", slot="2026-11-24T11:00")["booking"]["code"]
    b.at(TUESDAY, 11, 45)  # the lunch break: no walk-in tickets, so no late one either
    b.refused("HALL_BREAK", "checkin", code=code)
    b.at(TUESDAY, 13, 30)
    assert b.do("checkin", code=code)["late"] is True


def test_the_worked_example_of_the_calling_rule() -> None:
    """docs/calling-rules.md "Appointments": streak 2, walk-ins W1-W3, bookings R1-R3 for 10:00."""
    b = Bench(local(TUESDAY, 9).astimezone(UTC), appt_config(slot_capacity=6))
    codes = [b.do("book", service="P", slot="2026-11-24T10:00")["booking"]["code"] for _ in range(2)]
    codes.append(b.do("book", service="P", slot="2026-11-24T10:00", contact="13812345678")["booking"]["code"])
    b.at(TUESDAY, 9, 20)
    walk_ins = [b.do("take_ticket", service="P")["ticket"]["label"] for _ in range(3)]
    r = []
    for code, (hh, mm) in zip(codes, ((9, 48), (9, 52), (9, 59)), strict=True):
        b.at(TUESDAY, hh, mm)
        r.append(b.do("checkin", code=code)["ticket"]["label"])
    b.at(TUESDAY, 10)
    b.sign_in()
    calls = [b.serve_next() for _ in range(6)]
    assert calls == [(r[0], "appointment"), (r[1], "appointment"), (walk_ins[0], "fifo"), (r[2], "appointment"),
                     (walk_ins[1], "fifo"), (walk_ins[2], "fifo")]


def test_walk_ins_are_never_starved_and_green_channel_keeps_its_turns() -> None:
    """Many appointment tickets due at once: at most `streak` in a row while a walk-in waits, and a normal
    walk-in at least once every (streak + 1) x (priority_streak + 1) calls."""
    cfg = appt_config(slot_capacity=40, walkin_share=0.0)
    b = Bench(local(TUESDAY, 9).astimezone(UTC), cfg)
    codes = [b.do("book", service="P", slot="2026-11-24T10:00")["booking"]["code"] for _ in range(12)]
    b.at(TUESDAY, 9, 46)
    appts = {b.do("checkin", code=c)["ticket"]["label"] for c in codes}
    prio = {b.do("take_ticket", service="P", priority="elderly")["ticket"]["label"] for _ in range(6)}
    normal = {b.do("take_ticket", service="P")["ticket"]["label"] for _ in range(4)}
    b.at(TUESDAY, 10, 1)
    b.sign_in()
    order = [b.serve_next()[0] for _ in range(22)]
    assert set(order) == appts | prio | normal
    run = worst_run = gap = worst_gap = 0
    for i, label in enumerate(order):
        walk_in_waits = bool((prio | normal) - set(order[:i]))
        run = run + 1 if label in appts and walk_in_waits else 0
        worst_run = max(worst_run, run)
        normal_waits = bool(normal - set(order[:i]))
        gap = 0 if label in normal else gap + (1 if normal_waits else 0)
        worst_gap = max(worst_gap, gap)
    assert worst_run == 2
    assert worst_gap <= (2 + 1) * (2 + 1) - 1


def test_another_counter_and_the_over_wait_rule_still_apply() -> None:
    cfg = replace(appt_config(), calling=replace(appt_config().calling, over_wait_minutes=30))
    b = Bench(local(TUESDAY, 9).astimezone(UTC), cfg)
    code = b.do("book", service="P", slot="2026-11-24T10:00")["booking"]["code"]
    walk_in = b.do("take_ticket", service="P")["ticket"]["label"]
    b.at(TUESDAY, 9, 50)
    appt = b.do("checkin", code=code)["ticket"]["label"]
    b.at(TUESDAY, 10, 0)
    b.sign_in()
    assert b.serve_next() == (walk_in, "over_wait")  # waited 60 minutes > 30
    assert b.serve_next() == (appt, "appointment")


# ---------------------------------------------------------------------------- the day's close


def test_a_booking_never_checked_in_is_a_no_show_at_the_close() -> None:
    b = Bench(local(TUESDAY, 9).astimezone(UTC))
    missed = b.do("book", service="P", slot="2026-11-24T15:00", contact="13812345678")["booking"]["code"]
    kept = b.do("book", service="P", slot="2026-11-24T10:00")["booking"]["code"]
    cancelled = b.do("book", service="H", slot="2026-11-24T16:00")["booking"]["code"]
    later = b.do("book", service="P", slot="2026-11-25T09:00")["booking"]["code"]
    b.do("unbook", code=cancelled)
    b.at(TUESDAY, 9, 50)
    b.do("checkin", code=kept)
    b.at(TUESDAY, 18, 1)  # closed at 18:00 (17:00 + 60 minutes)
    b.hall.close_day_if_due()
    closes = [e for e in b.events if e.type == "booking_no_show"]
    assert len(closes) == 1 and closes[0].data["booking"]["slot"] == "2026-11-24T15:00"
    assert next(e for e in b.events if e.type == "day_closed").data["booking_no_shows"] == 1
    states = {c: b.hall.booking_records[c].state for c in (missed, kept, cancelled, later)}
    assert states == {missed: "no_show", kept: "checked_in", cancelled: "cancelled", later: "booked"}
    b.at(WEDNESDAY, 8, 50)
    err = b.refused("BOOKING_WRONG_DAY", "checkin", code=missed)
    assert "2026-11-24 15:00" in err.message_zh
    assert b.do("checkin", code=later)["ticket"]["appointment"] is True
    assert b.do("bookings", date=TUESDAY.isoformat())["bookings"][0]["code"] == kept


def test_the_admin_list_of_a_day() -> None:
    b = Bench(local(TUESDAY, 9).astimezone(UTC))
    for slot, service in (("2026-11-25T14:00", "H"), ("2026-11-25T09:00", "P"), ("2026-11-26T09:00", "P")):
        b.do("book", service=service, slot=slot)
    day = b.do("bookings", date="2026-11-25")["bookings"]
    assert [(x["slot"], x["service"]) for x in day] == [("2026-11-25T09:00", "P"), ("2026-11-25T14:00", "H")]
    assert [x["service"] for x in b.do("bookings", date="2026-11-25", service="H")["bookings"]] == ["H"]
    b.refused("UNKNOWN_SERVICE", "bookings", date="2026-11-25", service="NOPE")


# ---------------------------------------------------------------------------- the real broker


def test_over_the_wire_durable_and_idempotent(start_broker: Callable[..., BrokerThread], db_url: str,
                                               manual_clock: ManualClock) -> None:
    """Book, retry with the same request id (the same booking, not two), restart the broker on the same
    database: the booking, its place in the slot and its contact are all still there; refusals are bilingual
    and issue nothing; the check-in after the restart issues an appointment ticket."""
    cfg = appt_config()
    bt = start_broker(cfg, db_url=db_url)
    c = BrokerClient(bt.endpoint)
    try:
        req = Request(type="book", args={"service": "P", "slot": "2026-11-24T10:00", "contact": "13812345678"},
                      client="web-1", id="book-1")
        first = c.send(req)
        again = c.send(Request(type="book", args=req.args, client="web-1", id="book-1"))
        assert first.ok and again.ok and again.result == first.result
        code = first.result["booking"]["code"]
        c.request("book", service="P", slot="2026-11-24T10:00")
        with pytest.raises(CommandRefused) as info:
            c.request("book", service="P", slot="2026-11-24T10:00")
        assert info.value.error["code"] == "SLOT_FULL" and info.value.error["message_zh"]
        with pytest.raises(CommandRefused) as info:
            c.request("checkin", code=code)  # 09:00: the window opens at 09:45
        assert info.value.error["code"] == "BOOKING_TOO_EARLY"
        assert c.request("snapshot")["state"]["tickets"] == {}
    finally:
        c.close()
    bt.stop()
    bt.start()  # a new broker process state rebuilt from the database
    manual_clock.set(local(TUESDAY, 9, 50).astimezone(UTC))
    c = BrokerClient(bt.endpoint)
    try:
        slot = c.request("slots", service="P", date="2026-11-24")["slots"][3]
        assert (slot["start"], slot["booked"], slot["free"]) == ("2026-11-24T10:00", 2, 0)
        listed = c.request("bookings", date="2026-11-24")["bookings"]
        assert [b["code"] for b in listed if b["contact_masked"] == "138****5678"] == [code]
        with pytest.raises(CommandRefused) as info:
            c.request("checkin", code=code, contact="13900000000")
        assert info.value.error["code"] == "BOOKING_CONTACT_MISMATCH"
        got = c.request("checkin", code=f"queuehall:booking:{code}", contact="13812345678")
        assert got["ticket"]["appointment"] is True and got["ticket"]["label"] == "A001"
        with pytest.raises(CommandRefused) as info:
            c.request("checkin", code=code)
        assert info.value.error["code"] == "BOOKING_ALREADY_CHECKED_IN"
        assert list(c.request("snapshot")["state"]["tickets"]) == ["1"]
    finally:
        c.close()
    assert bt.store is not None
    with bt.store.engine.connect() as conn:
        row = conn.execute(select(storage.bookings).where(storage.bookings.c.code == code)).one()
        ticket = conn.execute(select(storage.tickets.c.booking, storage.tickets.c.slot_at)).one()
    assert row.state == "checked_in" and row.contact_masked == "138****5678"
    assert row.contact_hash.startswith("hmac-sha256$") and "13812345678" not in repr(tuple(row))
    assert ticket.booking == code and ticket.slot_at == datetime(2026, 11, 24, 2, 0)


def test_booking_no_shows_are_stored_and_survive_a_restart(start_broker: Callable[..., BrokerThread],
                                                            db_url: str, manual_clock: ManualClock) -> None:
    bt = start_broker(appt_config(), db_url=db_url)
    c = BrokerClient(bt.endpoint)
    try:
        code = c.request("book", service="P", slot="2026-11-24T15:00")["booking"]["code"]
    finally:
        c.close()
    bt.stop()
    manual_clock.set(local(WEDNESDAY, 8, 0).astimezone(UTC))  # stopped overnight: the start closes Tuesday
    bt.start()
    assert bt.store is not None
    with bt.store.engine.connect() as conn:
        state = conn.execute(select(storage.bookings.c.state).where(storage.bookings.c.code == code)).scalar()
    assert state == "no_show"
    c = BrokerClient(bt.endpoint)
    try:
        with pytest.raises(CommandRefused) as info:
            c.request("checkin", code=code)
        assert info.value.error["code"] == "BOOKING_WRONG_DAY"
    finally:
        c.close()


def test_a_booking_acknowledged_survives_kill_9(broker_process: Callable[..., Any], tmp_path: Path) -> None:
    """The default hall (passports take bookings) in a real broker process, killed with SIGKILL right after
    the booking was acknowledged: the restarted broker has it, with its place taken."""
    db = tmp_path / "hall.db"
    proc = broker_process(db).start()
    c = BrokerClient(proc.endpoint)
    try:
        booking = c.request("book", service="passport", slot="2026-11-24T10:30", contact="11010519491231002X")
    finally:
        c.close()
    proc.kill9()
    proc2 = broker_process(db, port=proc.port).start()
    c = BrokerClient(proc2.endpoint)
    try:
        listed = c.request("bookings", date="2026-11-24")["bookings"]
        assert listed == [booking["booking"]]
        slot = next(s for s in c.request("slots", service="passport", date="2026-11-24")["slots"]
                    if s["start"] == "2026-11-24T10:30")
        assert slot["booked"] == 1
        # The contact key is the broker's file, not the process's: after the restart the contact is still
        # checked (a wrong one is a mismatch, not "cannot be checked"); the key is nowhere in the database.
        with pytest.raises(CommandRefused) as info:
            c.request("checkin", code=booking["booking"]["code"], contact="11010519491231003X")
        assert info.value.error["code"] == "BOOKING_CONTACT_MISMATCH"
    finally:
        c.close()
    key = (tmp_path / "data" / "contact.key").read_text().strip()
    assert len(key) == 64 and key.encode() not in db.read_bytes()
    assert (tmp_path / "data" / "contact.key").stat().st_mode & 0o777 == 0o600


def test_the_contact_key_file_is_made_once_and_a_bad_one_refused(tmp_path: Path) -> None:
    from queuehall.broker.main import load_contact_key

    path = tmp_path / "keys" / "contact.key"
    key = load_contact_key(path)
    assert len(key) == 32 and load_contact_key(path) == key and path.stat().st_mode & 0o777 == 0o600
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind
    path.write_text("not hex\n")
    with pytest.raises(ValueError, match="cannot read the contact key"):
        load_contact_key(path)
    path.write_text("ab" * 16 + "\n")
    with pytest.raises(ValueError, match="64 hex digits"):
        load_contact_key(path)
    (tmp_path / "a file").write_text("")
    with pytest.raises(ValueError, match=r"cannot make the contact key .*--contact-key FILE"):
        load_contact_key(tmp_path / "a file" / "contact.key")  # its directory cannot be made


def test_a_contact_hashed_under_another_key_cannot_be_checked_and_is_said_so() -> None:
    """The hall's contact key replaced (its file lost): a booking's contact can no longer be checked. The
    check-in with the contact is refused with BOOKING_CONTACT_UNCHECKABLE (not a mismatch), no ticket; without
    the contact it goes through."""
    b = Bench(local(TUESDAY, 9, 50).astimezone(UTC))
    code = b.do("book", service="P", slot="2026-11-24T10:00", contact="13812345678")["booking"]["code"]
    b.hall.contact_key = new_contact_key()
    err = b.refused("BOOKING_CONTACT_UNCHECKABLE", "checkin", code=code, contact="13812345678")
    assert "无法核对" in err.message_zh and "cannot be checked" in err.message_en
    assert b.do("checkin", code=code)["ticket"]["appointment"] is True


def test_purge_deletes_old_bookings_and_their_contacts(db_url: str) -> None:
    cfg = appt_config()
    store = open_store(db_url)
    try:
        install_pins(store, cfg)
        clock = ManualClock(local(TUESDAY, 9).astimezone(UTC))
        hall = load_hall(cfg, clock, store)
        code = hall.execute("book", {"service": "P", "slot": "2026-11-24T10:00", "contact": "13812345678"})[
            "booking"]["code"]
        open_one = hall.execute("book", {"service": "P", "slot": "2026-11-25T10:00"})["booking"]["code"]
        clock.set(local(TUESDAY + timedelta(days=200), 9).astimezone(UTC))
        hall.close_day_if_due()
        today = TUESDAY + timedelta(days=200)
        counts = store.purge(today - timedelta(days=cfg.retention_days), retention_days=cfg.retention_days,
                             today=today)
        assert counts["bookings"] == 2
        with store.engine.connect() as conn:
            left = conn.execute(select(storage.bookings.c.code)).scalars().all()
        assert code not in left and open_one not in left
    finally:
        store.close()


def test_store_round_trip_of_bookings(db_url: str) -> None:
    """What the journal writes is what a rebuild loads: the engine's bookings compare equal."""
    cfg = appt_config()
    store = open_store(db_url)
    try:
        install_pins(store, cfg)
        clock = ManualClock(local(TUESDAY, 9).astimezone(UTC))
        hall = load_hall(cfg, clock, store)
        for slot in ("2026-11-24T10:00", "2026-11-24T10:00", "2026-11-26T14:00"):
            hall.execute("book", {"service": "P", "slot": slot, "contact": "13812345678"})
        first = next(iter(hall.booking_records))
        hall.execute("unbook", {"code": first})
        again = load_hall(cfg, clock, Store(store.engine))
        assert again.booking_records == hall.booking_records and again._booked == hall._booked
    finally:
        store.close()


def test_hours_fixture_is_what_the_rules_assume() -> None:
    assert appt_config().hours == Hours(weekly=tuple(tuple(DAY) if i < 6 else () for i in range(7)),
                                        chinese_calendar=True, closed_days=frozenset(), working_days=frozenset(),
                                        makeup_hours=tuple(DAY))


def test_the_command_line_books_lists_and_checks_in(start_broker: Callable[..., BrokerThread], hall_config: Any,
                                                     manual_clock: ManualClock,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """queuehall book / slots / bookings / unbook / checkin against the default hall (passports take bookings);
    `checkin` with a booking code checks the booking in, with a ticket label a remote ticket."""
    from queuehall.cli import EXIT_OK, EXIT_REFUSED, is_booking_code, main

    bt = start_broker(hall_config)
    b = ("--broker", bt.endpoint)

    def run(*argv: str) -> tuple[int, dict[str, Any]]:
        code = main([*argv, *b])
        return code, json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    code, out = run("slots", "passport")
    assert code == EXIT_OK and out["result"]["date"] == "2026-11-24" and len(out["result"]["slots"]) == 13
    code, out = run("book", "passport", "--slot", "2026-11-24T10:00", "--contact", "13812345678")
    assert code == EXIT_OK and out["result"]["booking"]["contact_masked"] == "138****5678"
    booking = out["result"]["booking"]["code"]
    code, out = run("book", "passport", "--slot", "2026-11-24T12:00")
    assert (code, out["error"]["code"]) == (EXIT_REFUSED, "SLOT_CLOSED") and out["error"]["message_zh"]
    code, out = run("book", "passport", "--slot", "2026-11-24T10:30")
    cancelled = out["result"]["booking"]["code"]
    code, out = run("unbook", cancelled)
    assert code == EXIT_OK and out["result"]["booking"]["state"] == "cancelled"
    code, out = run("bookings")
    assert [(x["code"], x["state"]) for x in out["result"]["bookings"]] == [(booking, "booked"),
                                                                           (cancelled, "cancelled")]
    code, out = run("checkin", booking)
    assert (code, out["error"]["code"]) == (EXIT_REFUSED, "BOOKING_TOO_EARLY")
    manual_clock.set(local(TUESDAY, 9, 50).astimezone(UTC))
    dashed = f"{booking[:5].lower()}-{booking[5:]}"
    assert is_booking_code(dashed) and not is_booking_code("A012") and not is_booking_code("17")
    code, out = run("checkin", dashed)
    assert code == EXIT_OK and out["result"]["ticket"]["appointment"] is True
    code, out = run("checkin", "A001")  # a ticket label: the remote-ticket check-in
    assert (code, out["error"]["code"]) == (EXIT_REFUSED, "NOT_REMOTE")
    code, out = run("checkin", "K7M3Q9XPFA")
    assert (code, out["error"]["code"]) == (EXIT_REFUSED, "BOOKING_CODE_INVALID")


# ---------------------------------------------------------------------------- reports


def test_the_report_counts_bookings_check_ins_punctuality_and_waits(db_url: str) -> None:
    """One Tuesday through the engine into the database, then `queuehall report`'s figures against hand counts:
    5 bookings of P (1 cancelled, 2 on time, 1 late, 1 never came) and 1 of H (on time); waits measured on the
    simulated clock."""
    from queuehall.broker.reports import ReportBuilder
    from queuehall.broker.reports.render import appointments_csv, to_table

    cfg = appt_config(slot_capacity=10)
    store = open_store(db_url)
    try:
        install_pins(store, cfg)
        clock = ManualClock(local(TUESDAY, 8, 40).astimezone(UTC))
        hall = load_hall(cfg, clock, store)

        def at(hh: int, mm: int) -> None:
            clock.set(local(TUESDAY, hh, mm).astimezone(UTC))

        def do(command: str, **args: Any) -> dict[str, Any]:
            return hall.execute(command, args)

        p = [do("book", service="P", slot="2026-11-24T09:30")["booking"]["code"] for _ in range(5)]
        h = do("book", service="H", slot="2026-11-24T10:00")["booking"]["code"]
        do("unbook", code=p[0])
        at(9, 0)
        walk_in = do("take_ticket", service="P")["ticket"]["label"]  # waits 35 min: called at 09:35
        at(9, 20)
        do("checkin", code=p[1])  # 10 min early
        at(9, 30)
        do("checkin", code=p[2])  # on the dot
        at(9, 45)
        do("checkin", code=p[3])  # 15 min late: a normal ticket
        do("checkin", code=h)  # 15 min early
        do("sign_in", counter=1, clerk="c1a", pin="1234")
        do("sign_in", counter=2, clerk="c2a", pin="1234")
        # 09:35: the counter calls: p[1] (slot started), p[2], then the walk-in (streak 2), then the late one.
        at(9, 35)
        calls = []
        for minute in (35, 40, 45, 50):
            at(9, minute)
            calls.append(do("call_next", counter=1)["ticket"]["label"])
            do("start", counter=1)
            do("finish", counter=1)
        at(10, 5)
        calls.append(do("call_next", counter=2)["ticket"]["label"])  # H's appointment: 5 min after its slot
        assert calls[2] == walk_in
        at(18, 30)
        hall.close_day_if_due()  # p[4] never came: a booking no-show
        rep = ReportBuilder(store.engine, cfg).build(TUESDAY, TUESDAY, now=local(TUESDAY, 19).astimezone(UTC))
    finally:
        store.close()
    a = rep.appointments
    rows = {(r["day"], r["service"]): r for r in a["by_service_day"]}
    pr = rows[("2026-11-24", "P")]
    assert {k: pr[k] for k in ("booked", "cancelled", "checked_in", "late", "no_show", "open")} == {
        "booked": 5, "cancelled": 1, "checked_in": 2, "late": 1, "no_show": 1, "open": 0}
    assert pr["checkin_rate"] == 0.75 and pr["punctuality"] == round(2 / 3, 4)
    assert pr["arrival_early_avg_min"] == round((10 + 0 - 15) / 3, 2)
    assert rows[("all", "all")]["booked"] == 6 and rows[("all", "all")]["checkin_rate"] == 0.8
    waits = {(r["service"], r["kind"]): r for r in a["waits"]}
    # Appointments of P: checked in 09:20 and 09:30, called 09:35 and 09:40: waits 15 and 10; from the slot's
    # start (09:30): 5 and 10.
    ap = waits[("P", "appointment")]
    assert (ap["tickets"], ap["called"], ap["wait_avg_min"], ap["from_slot_avg_min"]) == (2, 2, 12.5, 7.5)
    # Walk-ins of P: 09:00 -> 09:45 (45 min) and the late one 09:45 -> 09:50 (5 min).
    wp = waits[("P", "walk_in")]
    assert (wp["tickets"], wp["called"], wp["wait_avg_min"], wp["wait_median_min"]) == (2, 2, 25.0, 5.0)
    assert waits[("H", "appointment")]["from_slot_avg_min"] == 5.0
    assert waits[("all", "appointment")]["tickets"] == 3
    text = to_table(rep)
    assert "预约 appointments" in text and "75.0%" in text
    csv_text = appointments_csv(rep)
    head, second = csv_text.split("\n\n")
    assert head.splitlines()[0].startswith("day,service,booked,cancelled,checked_in,late,no_show,open")
    assert second.splitlines()[0].startswith("service,kind,tickets,called,wait_avg_min")
    assert "2026-11-24,P,5,1,2,1,1,0,0.75," in head
    assert rep.to_dict()["appointments"] == a


def test_two_halls_on_one_database_keep_their_bookings_apart(db_url: str) -> None:
    """Two halls (ids dongcheng and xicheng, docs/city.md) on one database: each loads only its own bookings and
    places, and a code of one checked in at the other is BOOKING_WRONG_HALL, issuing nothing."""
    halls = {}
    for hall_id, zh in (("dongcheng", "东城大厅"), ("xicheng", "西城大厅")):
        cfg = replace(appt_config(), hall_id=hall_id, hall_id_given=True, name=replace(appt_config().name, zh=zh))
        store = open_store(db_url, hall=hall_id, hall_given=True)
        install_pins(store, cfg)
        halls[hall_id] = (cfg, store, load_hall(cfg, ManualClock(local(TUESDAY, 9, 0).astimezone(UTC)), store))
    try:
        east, west = halls["dongcheng"][2], halls["xicheng"][2]
        part = next(r for r in (c * 8 for c in ALPHABET)
                    if new_code("dongcheng", r)[8] != new_code("xicheng", r)[8])
        east.code_source = lambda: part
        code = east.execute("book", {"service": "P", "slot": "2026-11-24T10:00"})["booking"]["code"]
        west.code_source = lambda: part  # the same random part: the same code but for the hall tag
        west_code = west.execute("book", {"service": "P", "slot": "2026-11-24T10:00"})["booking"]["code"]
        assert west_code[:8] == code[:8] and west_code != code
        cfg_w, store_w, _ = halls["xicheng"]
        again = load_hall(cfg_w, ManualClock(local(TUESDAY, 9, 50).astimezone(UTC)), store_w)
        assert list(again.booking_records) == [west_code]
        assert again.query("slots", {"service": "P"})["slots"][3]["booked"] == 1
        with pytest.raises(HallError) as info:
            again.execute("checkin", {"code": code})
        assert info.value.code == "BOOKING_WRONG_HALL" and not again.tickets
        assert again.execute("checkin", {"code": west_code})["ticket"]["appointment"] is True
    finally:
        for _cfg, store, _hall in halls.values():
            store.close()


def test_queuehall_report_prints_the_appointment_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`queuehall report --appointments --format csv` and the table, from a database the default hall wrote."""
    from queuehall.cli import main

    cfg = load_config(broker_fixtures.DEFAULT_CONFIG)
    url = f"sqlite:///{tmp_path / 'hall.db'}"
    store = open_store(url)
    try:
        install_pins(store, cfg)
        clock = ManualClock(local(TUESDAY, 9).astimezone(UTC))
        hall = load_hall(cfg, clock, store)
        codes = [hall.execute("book", {"service": "passport", "slot": "2026-11-24T10:00"})["booking"]["code"]
                 for _ in range(2)]
        clock.set(local(TUESDAY, 9, 50).astimezone(UTC))
        hall.execute("checkin", {"code": codes[0]})
    finally:
        store.close()
    db = ["--db", url, "--config", str(broker_fixtures.DEFAULT_CONFIG), "--day", "2026-11-24"]
    assert main(["report", *db, "--appointments", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert "2026-11-24,passport,2,0,1,0,0,1,0.5," in out and "passport,appointment,1,0," in out
    assert main(["report", *db]) == 0
    assert "预约 appointments" in capsys.readouterr().out


# ---------------------------------------------------------------------------- guessing codes


def test_a_device_giving_too_many_wrong_codes_waits_a_minute_and_others_do_not(
        start_broker: Callable[..., BrokerThread], manual_clock: ManualClock) -> None:
    """Issue 19: booking codes are about 40 random bits, and the broker also stops guessing them. A device
    (here: client ids, the broker runs without keys) that gave ``wrong_codes_per_minute`` wrong codes within a
    minute (well formed for this hall but not booked: BOOKING_NOT_FOUND, through ``checkin``, ``unbook`` or
    ``booking``) is refused every code with BOOKING_CODE_LIMIT, bilingual, saying when to try again, and nothing
    is looked up or changed; another device is not affected; a minute after its first wrong code it may try
    again. Codes typed wrong (the check character catches them before any lookup) do not count. On the injected
    clock."""
    manual_clock.set(local(TUESDAY, 9, 50).astimezone(UTC))
    bt = start_broker(appt_config(wrong_codes_per_minute=3))
    c = BrokerClient(bt.endpoint)
    try:
        real = c.request("book", service="P", slot="2026-11-24T10:00")["booking"]["code"]
        other = c.request("book", service="P", slot="2026-11-24T10:00")["booking"]["code"]

        def ask(client: str, rid: str, command: str = "checkin", code: str = real) -> Any:
            return c.send(Request(type=command, args={"code": code}, client=client, id=rid))

        typo = real[:3] + ("2" if real[3] != "2" else "3") + real[4:]
        typos = [ask("kiosk-1", f"t{i}", "checkin", typo) for i in range(5)]  # a citizen's typos: not guesses
        assert {r.error["code"] for r in typos} == {"BOOKING_CODE_INVALID"}
        assert ask("kiosk-1", "t5", "booking").ok
        assert bt.broker is not None
        unbooked = [new_code(bt.broker.hall.hall_identity()) for _ in range(3)]
        got = [ask("kiosk-1", "g1", "checkin", unbooked[0]), ask("kiosk-1", "g2", "booking", unbooked[1]),
               ask("kiosk-1", "g3", "unbook", unbooked[2])]
        assert [r.error["code"] for r in got] == ["BOOKING_NOT_FOUND"] * 3
        manual_clock.set((local(TUESDAY, 9, 50) + timedelta(seconds=20)).astimezone(UTC))
        limited = ask("kiosk-1", "g4")  # the right code now: refused all the same, and nothing checked in
        assert not limited.ok and limited.error["code"] == "BOOKING_CODE_LIMIT"
        assert limited.error["details"]["retry_after"] == 40
        assert "40 秒后" in limited.error["message_zh"] and "in 40 s" in limited.error["message_en"]
        assert not ask("kiosk-1", "g5", "booking").ok  # every command naming a code
        assert c.request("snapshot")["state"]["tickets"] == {}
        assert [b["state"] for b in c.request("bookings", date="2026-11-24")["bookings"]] == ["booked", "booked"]
        other_kiosk = ask("kiosk-2", "k1", "checkin", other)  # another device checks in as usual
        assert other_kiosk.ok and other_kiosk.result["ticket"]["appointment"] is True
        assert ask("kiosk-2", "k1", "checkin", other).ok  # ... and its retry is answered with the same reply
        manual_clock.set(local(TUESDAY, 9, 51).astimezone(UTC))  # a minute after the first wrong code
        done = ask("kiosk-1", "g6")
        assert done.ok and done.result["ticket"]["appointment"] is True
    finally:
        c.close()


def test_wrong_codes_are_counted_per_device_in_a_sliding_minute() -> None:
    guard = WrongCodes(2)
    t0 = local(TUESDAY, 9).astimezone(UTC)
    assert guard.wait_seconds("k", t0) == 0
    guard.wrong("k", t0)
    assert guard.wait_seconds("k", t0 + timedelta(seconds=5)) == 0
    guard.wrong("k", t0 + timedelta(seconds=30))
    assert guard.wait_seconds("k", t0 + timedelta(seconds=30)) == 30
    assert guard.wait_seconds("other", t0 + timedelta(seconds=30)) == 0
    assert guard.wait_seconds("k", t0 + timedelta(seconds=59, milliseconds=500)) == 1
    assert guard.wait_seconds("k", t0 + timedelta(seconds=60)) == 0  # the first is a minute old
    guard.wrong("k", t0 + timedelta(seconds=61))
    assert guard.wait_seconds("k", t0 + timedelta(seconds=62)) == 28  # the one at 30 s and the one at 61 s
    assert guard.wait_seconds("k", t0 + timedelta(minutes=3)) == 0 and "k" not in guard._wrong


def test_the_wrong_code_limit_is_configured_and_checked() -> None:
    cfg = load_config(broker_fixtures.DEFAULT_CONFIG)
    assert cfg.appointments.wrong_codes_per_minute == 10
    data = cfg.to_dict()
    data["appointments"]["wrong_codes_per_minute"] = 5
    assert parse_config(data, "five").appointments.wrong_codes_per_minute == 5
    data["appointments"]["wrong_codes_per_minute"] = 0
    with pytest.raises(Exception) as info:
        parse_config(data, "bad")
    assert "appointments.wrong_codes_per_minute" in str(info.value)
