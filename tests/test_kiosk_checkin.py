"""Check-in at the kiosk without Qt (issue 19, and issue 16's remote tickets): the scanner's keystrokes told
from anything else, what a scanned text asks for, the model's flow from keypad or scan to the printed
appointment ticket, every refusal in both languages with what to do, and remote tickets checked in by
their QR code through a real broker, link and printer worker (kiosk.controller)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from queuehall.kiosk.checkin import (
    BOOKING_ALPHABET,
    BookingScan,
    ScanDetector,
    TicketScan,
    UnknownScan,
    is_booking_code,
    normalize_code,
    parse_scan,
)
from queuehall.kiosk.model import (
    CheckIn,
    CheckInTicket,
    CheckPrinter,
    KioskModel,
    KioskSettings,
    Phase,
    PrinterHealth,
    PrintTicket,
    Screen,
)
from queuehall.kiosk.ticket import TicketContent

from queuehall.client import BrokerClient, CommandRefused
from queuehall.clock import ManualClock
from tests import broker_fixtures
from tests.broker_fixtures import BrokerThread, security
from tests.hall_factory import TUESDAY, local
from tests.test_kiosk_controller import Kiosk, file_printer
from tests.test_remote_tickets import remote_config

start_broker_fixture = broker_fixtures.start_broker_fixture
manual_clock_fixture = broker_fixtures.manual_clock_fixture
keys_dir_fixture = broker_fixtures.keys_dir_fixture

NOW = datetime(2026, 12, 8, 1, 50, tzinfo=UTC)  # 09:50 in the hall, a Tuesday
SETTINGS = KioskSettings(return_ms=400, message_ms=500, print_failed_ms=600, idle_ms=60_000, status_ms=60_000)


# ---------------------------------------------------------------------------------------- the scanner's keys


def type_burst(d: ScanDetector, text: str, start: float, gap: float) -> float:
    at = start
    for ch in text:
        d.key(ch, at)
        at += gap
    return at


def test_a_fast_burst_ending_with_enter_is_a_scan() -> None:
    d = ScanDetector()
    at = type_burst(d, "queuehall:booking:K7M3Q9XPAB", 100.0, 0.008)
    assert d.enter(at) == "queuehall:booking:K7M3Q9XPAB"
    assert d.pending == ""  # and it is forgotten


def test_slow_typing_short_bursts_and_a_late_enter_are_not_scans() -> None:
    d = ScanDetector()
    at = type_burst(d, "K7M3Q9XPAB", 0.0, 0.25)  # a person at a keyboard
    assert d.enter(at) is None
    at = type_burst(d, "K7M", 10.0, 0.005)  # too short
    assert d.enter(at) is None
    at = type_burst(d, "K7M3Q9XPAB", 20.0, 0.005)
    assert d.enter(at + 1.0) is None  # Enter long after the burst: not the scanner's
    # a pause in the middle starts the burst again: only the fast tail counts
    d.key("x", 30.0)
    at = type_burst(d, "K7M3Q9XPAB", 31.0, 0.005)
    assert d.enter(at) == "K7M3Q9XPAB"


def test_what_a_scan_asks_for() -> None:
    assert parse_scan("queuehall:booking:K7M3Q9XPAB") == BookingScan("K7M3Q9XPAB")
    assert parse_scan("QUEUEHALL:BOOKING:k7m3-q9xp-ab") == BookingScan("K7M3Q9XPAB")
    assert parse_scan("https://queue.example.gov.cn/b/K7M3Q9XPAB") == BookingScan("K7M3Q9XPAB")
    assert parse_scan("k7m3 q9xp ab") == BookingScan("K7M3Q9XPAB")  # a code typed or printed as a barcode
    token = "Zm9vYmFyYmF6cXV4MTIzNA"
    assert parse_scan(f"https://queue.example.gov.cn/t/{token}") == TicketScan(token=token)
    assert parse_scan("queuehall:ticket:20:A005:2026-12-08") == TicketScan(id=20, label="A005", day="2026-12-08")
    for other in ("6901234567892", "https://example.com/t/short", "https://example.com/x/K7M3Q9XPAB",
                  "queuehall:ticket:x:A005:2026", "WIFI:S:hall;T:WPA;P:secret;;", ""):
        assert isinstance(parse_scan(other), UnknownScan), other
    assert normalize_code(" k7m3-q9xp-ab ") == "K7M3Q9XPAB"
    assert is_booking_code("K7M3Q9XPAB") and not is_booking_code("K7M3Q9XPA0") and not is_booking_code("K7M3Q9XPA")
    assert not set("01OIL") & set(BOOKING_ALPHABET)


# ---------------------------------------------------------------------------------------- the model's flow


def _state() -> dict[str, Any]:
    svc = {"code": "passport", "name_zh": "普通护照申请", "name_en": "Passport application", "department": "a",
           "waiting": 3, "estimated_wait_minutes": 9, "issue_state": "open", "next_open": None, "materials": [],
           "promised_days": 0, "priority_classes": []}
    return {"timezone": "Asia/Shanghai", "services": {"passport": svc}, "service_order": ["passport"],
            "departments": [{"code": "a", "name_zh": "出入境", "name_en": "Exit-Entry"}],
            "hall": {"name_zh": "测试大厅", "name_en": "Test Hall", "help_counter": 12},
            "counters": {"12": {"number": 12, "name_zh": "12号窗口（咨询投诉）", "name_en": "Counter 12 (help desk)",
                                "services": [], "state": "open"}}}


def _model(clock: ManualClock | None = None) -> KioskModel:
    m = KioskModel(settings=SETTINGS, clock=(clock or ManualClock(NOW)).now)
    m.on_state(_state())
    m.on_printer_status(PrinterHealth(None))
    return m


BOOKING = {"code": "K7M3Q9XPAB", "hall": "test", "service": "passport",
           "service_name": {"zh": "普通护照申请", "en": "Passport application"}, "slot": "2026-12-08T10:00",
           "slot_end": "2026-12-08T10:30", "state": "checked_in", "qr": "queuehall:booking:K7M3Q9XPAB",
           "contact_masked": None, "ticket": "A012", "checked_in_at": "2026-12-08T01:50:00Z"}


def _checkin_reply(late: bool = False) -> dict[str, Any]:
    ticket = {"id": 12, "label": "A012", "service": "passport", "service_name_zh": "普通护照申请",
              "service_name_en": "Passport application", "issued_at": "2026-12-08T01:50:00Z",
              "business_day": "2026-12-08", "appointment": not late, "slot": "2026-12-08T10:00"}
    return {"status": "ok", "result": {"booking": BOOKING, "ticket": ticket, "late": late, "ahead": 2,
                                       "estimated_wait_minutes": 6}}


def test_the_keypad_takes_the_alphabet_only_and_eight_letters() -> None:
    m = _model()
    assert m.open_checkin() and m.screen == Screen.CHECKIN
    for key in "K7M3Q9XPA0OIL1":  # 0, O, I, L, 1 are not on the keypad
        m.type_code(key)
    assert m.code_entry == "K7M3Q9XPA"
    assert m.submit_code() is None and m.checkin_hint is not None  # nine letters: said so
    assert "10" in m.checkin_hint.zh and "10" in m.checkin_hint.en
    m.type_code("B")
    m.type_code("Z")  # an eleventh letter is not taken
    assert m.code_entry == "K7M3Q9XPAB" and m.checkin_hint is None
    m.type_code("back")
    assert m.code_entry == "K7M3Q9XPA"
    m.type_code("clear")
    assert m.code_entry == ""
    assert m.timeout_ms() == SETTINGS.idle_ms  # the keypad times out back to the start like other pages
    m.type_code("K")
    m.on_timeout()
    assert m.screen == Screen.START and m.code_entry == ""


def test_a_booking_on_time_prints_a_ticket_marked_as_an_appointment() -> None:
    m = _model()
    m.open_checkin()
    for key in "K7M3Q9XPAB":
        m.type_code(key)
    assert isinstance(m.submit_code(), CheckPrinter)
    assert m.busy and m.screen == Screen.CHECKIN
    assert m.submit_code() is None  # a double tap sends nothing more
    assert m.on_precheck(PrinterHealth(None)) == CheckIn("K7M3Q9XPAB")
    action = m.on_checkin_reply(_checkin_reply())
    assert isinstance(action, PrintTicket)
    assert action.fields["appointment_slot"] == "10:00"  # the ticket's 预约 / Appointment mark (kiosk/ticket.py)
    TicketContent(**action.fields)  # a valid ticket
    assert m.screen == Screen.CHECKIN  # printing
    assert m.on_print_result(None) is None
    assert m.screen == Screen.CHECKED_IN
    label, headline, next_step, late = m.checked_in_info() or ("", None, None, True)
    assert label == "A012" and not late
    assert headline is not None and headline.zh == "您预约的 10:00 普通护照申请"
    assert headline.en == "Your 10:00 appointment: Passport application"
    assert next_step is not None and "A012" in next_step.zh and "A012" in next_step.en
    assert m.timeout_ms() == SETTINGS.return_ms
    m.on_timeout()
    assert m.screen == Screen.START and m.clean


def test_a_late_arrival_is_told_plainly_it_is_now_a_normal_ticket() -> None:
    m = _model()
    assert isinstance(m.scan("queuehall:booking:K7M3Q9XPAB"), CheckPrinter)
    assert m.on_precheck(PrinterHealth(None)) == CheckIn("K7M3Q9XPAB")
    action = m.on_checkin_reply(_checkin_reply(late=True))
    assert isinstance(action, PrintTicket) and action.fields["appointment_slot"] is None  # a normal ticket
    m.on_print_result(None)
    label, headline, next_step, late = m.checked_in_info() or ("", None, None, False)
    assert label == "A012" and late and headline is not None and next_step is not None
    assert "已过预约签到时间" in headline.zh and "past its check-in time" in headline.en
    assert "普通号" in next_step.zh and "normal ticket" in next_step.en


REFUSALS = ["BOOKING_NOT_FOUND", "BOOKING_CODE_INVALID", "BOOKING_TOO_EARLY", "BOOKING_WRONG_DAY",
            "BOOKING_WRONG_HALL", "BOOKING_ALREADY_CHECKED_IN",
            "BOOKING_CANCELLED", "BOOKING_CODE_LIMIT", "UNAVAILABLE", "SOMETHING_NEW"]


@pytest.mark.parametrize("code", REFUSALS)
def test_every_refusal_is_bilingual_says_what_to_do_and_prints_nothing(code: str) -> None:
    m = _model()
    m.scan("K7M3Q9XPAB")
    m.on_precheck(PrinterHealth(None))
    reply: dict[str, Any] = {"status": "unavailable"} if code == "UNAVAILABLE" else {
        "status": "error", "error": {"code": code, "message_zh": "新的拒绝理由", "message_en": "A new reason",
                                     "details": {"slot": "2026-12-09T10:00", "opens": "09:45", "retry_after": 37}}}
    assert m.on_checkin_reply(reply) is None  # nothing to print
    assert m.screen == Screen.CHECKIN_REFUSED and m.issued is None
    msg = m.message
    assert msg is not None and msg.code == code
    for text in (msg.title.zh, msg.body.zh):
        assert text and any("\u4e00" <= ch <= "\u9fff" for ch in text)
    assert msg.title.en and msg.body.en.isascii()
    assert "12号窗口（咨询投诉）" in msg.body.zh and "Counter 12 (help desk)" in msg.body.en  # where to ask
    if code == "BOOKING_WRONG_DAY":
        assert "2026-12-09T10:00" in msg.body.zh
    if code == "BOOKING_TOO_EARLY":
        assert "09:45" in msg.body.zh and "09:45" in msg.body.en
    if code == "BOOKING_CODE_LIMIT":  # the broker's brake on guessing codes: when to try again
        assert "37 秒后" in msg.body.zh and "in 37 s" in msg.body.en
    if code == "SOMETHING_NEW":
        assert "新的拒绝理由" in msg.body.zh and "A new reason" in msg.body.en
    assert m.timeout_ms() == SETTINGS.message_ms
    assert m.open_checkin() and m.screen == Screen.CHECKIN  # "try again" from the refusal


def test_scans_on_any_citizen_page_but_never_while_busy_on_staff_pages_or_out_of_service() -> None:
    m = _model()
    assert m.tap_service("passport") and m.screen == Screen.DETAILS
    assert isinstance(m.scan("queuehall:booking:K7M3Q9XPAB"), CheckPrinter)  # from the details page
    assert m.scan("queuehall:booking:AAAAAAAA") is None  # busy: ignored
    m.on_precheck(PrinterHealth("PAPER_OUT"))  # the printer cannot print: nothing is checked in
    assert m.screen == Screen.ASK_STAFF
    assert m.scan("queuehall:booking:K7M3Q9XPAB") is None
    m.on_printer_status(PrinterHealth(None))
    m.open_settings()
    assert m.scan("queuehall:booking:K7M3Q9XPAB") is None
    m.close_settings()
    m.on_connection(False)
    assert m.screen == Screen.OUT_OF_SERVICE and m.scan("queuehall:booking:K7M3Q9XPAB") is None
    m.on_connection(True)
    assert m.scan("6901234567892") is None  # a product's barcode: refused as not recognised
    assert m.screen == Screen.CHECKIN_REFUSED and m.message is not None and m.message.code == "NOT_RECOGNISED"
    action = m.scan("https://queue.example.gov.cn/t/Zm9vYmFyYmF6cXV4MTIzNA")  # from the refusal page
    assert action == CheckInTicket("Zm9vYmFyYmF6cXV4MTIzNA", None) and m.screen == Screen.CHECKIN


def test_a_booking_of_another_day_reads_with_its_date() -> None:
    m = _model()
    assert m.slot_text({"slot": "2026-12-08T10:00"}).zh == "10:00"
    other = m.slot_text({"slot": "2026-12-09T14:30"})
    assert other.zh == "12月9日 14:30" and other.en == "Wed 9 Dec 14:30"


# ---------------------------------------------------------------------------------------- remote tickets, for real


@pytest.fixture
def remote_hall(start_broker: Callable[..., BrokerThread], manual_clock: ManualClock) -> BrokerThread:
    manual_clock.set(local(TUESDAY, 9))
    return start_broker(remote_config(public_base_url="https://queue.example.gov.cn"))


@pytest.fixture
def kiosk(remote_hall: BrokerThread, manual_clock: ManualClock, tmp_path: Path) -> Iterator[Kiosk]:
    k = Kiosk(remote_hall.endpoint, file_printer(tmp_path / "tickets"), tmp_path / "state" / "kiosk.json",
              manual_clock).start()
    yield k
    k.stop()


def _take_remote(hall: BrokerThread) -> dict[str, Any]:
    c = BrokerClient(hall.endpoint)
    try:
        return c.request("take_ticket", service="P", channel="remote")
    finally:
        c.close()


def test_a_remote_ticket_is_checked_in_by_scanning_its_page_address(kiosk: Kiosk, remote_hall: BrokerThread,
                                                                    tmp_path: Path) -> None:
    taken = _take_remote(remote_hall)
    assert taken["url"].startswith("https://queue.example.gov.cn/t/")
    kiosk.ready()
    kiosk.c.scan(taken["url"])
    kiosk.pump(lambda: kiosk.model.screen == Screen.CHECKED_IN, what="the check-in")
    label, headline, _next, _late = kiosk.model.checked_in_info() or ("", None, None, True)
    assert label == taken["ticket"]["label"] and headline is not None and "签到成功" in headline.zh
    assert not (tmp_path / "tickets").exists() or not any((tmp_path / "tickets").iterdir())  # nothing printed
    c = BrokerClient(remote_hall.endpoint)
    try:
        view = c.request("ticket_by_token", token=taken["token"])["ticket"]
        assert view["checked_in"] is True
    finally:
        c.close()
    # The same QR code again: refused, said so in both languages.
    kiosk.model.on_timeout()
    kiosk.c.scan(taken["url"])
    kiosk.pump(lambda: kiosk.model.screen == Screen.CHECKIN_REFUSED, what="the second check-in")
    assert kiosk.model.message is not None and kiosk.model.message.code == "ALREADY_CHECKED_IN"


def test_remote_ticket_refusals_at_the_kiosk(kiosk: Kiosk, remote_hall: BrokerThread) -> None:
    kiosk.ready()
    kiosk.c.scan("https://queue.example.gov.cn/t/AAAAAAAAAAAAAAAAAAAAAA")  # nobody's token
    kiosk.pump(lambda: kiosk.model.screen == Screen.CHECKIN_REFUSED, what="the refusal")
    assert kiosk.model.message is not None and kiosk.model.message.code == "UNKNOWN_TOKEN"
    c = BrokerClient(remote_hall.endpoint)
    try:
        walk_in = c.request("take_ticket", service="P")["ticket"]
    finally:
        c.close()
    kiosk.model.on_timeout()
    kiosk.c.scan(f"queuehall:ticket:{walk_in['id']}:{walk_in['label']}:{walk_in['business_day']}")
    kiosk.pump(lambda: kiosk.model.message is not None and kiosk.model.message.code == "NOT_REMOTE",
               what="a kiosk ticket scanned")
    assert kiosk.model.screen == Screen.CHECKIN_REFUSED and kiosk.model.phase == Phase.CHECKIN_REFUSED
    assert "无需签到" in kiosk.model.message.title.zh


def test_a_kiosk_may_find_a_ticket_by_its_token_and_a_display_may_not(
        start_broker: Callable[..., BrokerThread], keys_dir: Path) -> None:
    b = start_broker(remote_config(), keys_dir=keys_dir)
    admin = BrokerClient(b.endpoint, security=security(keys_dir, "manager"))
    kiosk = BrokerClient(b.endpoint, security=security(keys_dir, "kiosk-1"))
    wall = BrokerClient(b.endpoint, security=security(keys_dir, "wall-1"))
    try:
        token = admin.request("take_ticket", service="P", channel="remote")["token"]
        assert kiosk.request("ticket_by_token", token=token)["ticket"]["channel"] == "remote"
        with pytest.raises(CommandRefused) as err:
            wall.request("ticket_by_token", token=token)
        assert err.value.code == "FORBIDDEN"
    finally:
        for x in (admin, kiosk, wall):
            x.close()


# ---------------------------------------------------------------------------------------- bookings, for real


@pytest.fixture
def booking_hall(start_broker: Callable[..., BrokerThread], manual_clock: ManualClock) -> BrokerThread:
    from queuehall.broker.config import load_config

    manual_clock.set(local(TUESDAY, 9))
    return start_broker(load_config())  # the default hall: passports take bookings


@pytest.fixture
def booking_kiosk(booking_hall: BrokerThread, manual_clock: ManualClock, tmp_path: Path) -> Iterator[Kiosk]:
    k = Kiosk(booking_hall.endpoint, file_printer(tmp_path / "tickets"), tmp_path / "state" / "kiosk.json",
              manual_clock).start()
    yield k
    k.stop()


def _book(hall: BrokerThread, slot: str = "2026-11-24T10:00") -> Any:
    c = BrokerClient(hall.endpoint)
    try:
        return c.book("passport", slot, contact="13812345678")
    finally:
        c.close()


def _printed(tmp_path: Path) -> list[str]:
    from queuehall.tools.escpos_decode import decode

    path = tmp_path / "tickets"  # the file printer appends every ticket to this file
    return decode(path.read_bytes()).texts if path.is_file() else []


def test_the_booking_alphabet_and_length_are_the_brokers() -> None:
    from queuehall.broker import appointments
    from queuehall.kiosk import checkin

    assert checkin.BOOKING_ALPHABET == appointments.ALPHABET
    assert checkin.BOOKING_CODE_LENGTH == appointments.CODE_LENGTH


def test_the_client_library_books_lists_cancels_and_checks_in(booking_hall: BrokerThread,
                                                              manual_clock: ManualClock) -> None:
    c = BrokerClient(booking_hall.endpoint)
    try:
        slots = c.slots("passport", "2026-11-24")
        assert slots and all(s.start.startswith("2026-11-24T") and s.free <= s.capacity for s in slots)
        first = next(s for s in slots if s.start == "2026-11-24T10:00")
        b = c.book("passport", first.start, contact="13812345678")
        assert b.state == "booked" and b.slot == first.start and b.contact_masked == "138****5678"
        assert b.qr == f"queuehall:booking:{b.code}" and b.service_name_zh == "普通护照申请"
        assert next(s for s in c.slots("passport", "2026-11-24") if s.start == first.start).free == first.free - 1
        other = c.book("passport", "2026-11-24T10:30")
        assert c.unbook(other.code).state == "cancelled"
        assert [x.code for x in c.bookings("2026-11-24", "passport") if x.state == "booked"] == [b.code]
        manual_clock.set(local(TUESDAY, 9, 50))
        done = c.checkin(b.code)
        assert not done.late and done.booking.state == "checked_in" and done.ticket["appointment"] is True
        with pytest.raises(CommandRefused) as refused:
            c.checkin(b.code)
        assert refused.value.code == "BOOKING_ALREADY_CHECKED_IN"
    finally:
        c.close()


def test_a_booking_scanned_at_the_kiosk_prints_its_appointment_ticket(booking_kiosk: Kiosk, booking_hall: BrokerThread,
                                                                      manual_clock: ManualClock,
                                                                      tmp_path: Path) -> None:
    b = _book(booking_hall)
    manual_clock.set(local(TUESDAY, 9, 50))
    booking_kiosk.ready()
    booking_kiosk.c.scan(b.qr)
    booking_kiosk.pump(lambda: booking_kiosk.model.screen == Screen.CHECKED_IN, what="the check-in")
    label, headline, _next, late = booking_kiosk.model.checked_in_info() or ("", None, None, True)
    assert not late and headline is not None and headline.zh == "您预约的 10:00 普通护照申请"
    booking_kiosk.pump(lambda: any("预约" in t for t in _printed(tmp_path)), what="the printed ticket")
    texts = _printed(tmp_path)
    assert any("预约" in t and "10:00" in t for t in texts) and label in texts
    assert booking_kiosk.journal.pending == {}  # settled: printed


def test_the_keypad_checks_a_late_booking_in_as_a_normal_ticket(booking_kiosk: Kiosk, booking_hall: BrokerThread,
                                                                manual_clock: ManualClock, tmp_path: Path) -> None:
    b = _book(booking_hall)
    manual_clock.set(local(TUESDAY, 10, 25))  # past 10:10, the end of the check-in window
    booking_kiosk.ready()
    booking_kiosk.c.open_checkin()
    for ch in b.code.lower():
        booking_kiosk.c.type_code(ch)
    booking_kiosk.c.submit_code()
    booking_kiosk.pump(lambda: booking_kiosk.model.screen == Screen.CHECKED_IN, what="the check-in")
    _label, headline, next_step, late = booking_kiosk.model.checked_in_info() or ("", None, None, False)
    assert late and headline is not None and next_step is not None and "普通号" in next_step.zh
    booking_kiosk.pump(lambda: bool(_printed(tmp_path)), what="the printed ticket")
    assert not any("预约" in t for t in _printed(tmp_path))  # a normal ticket: no appointment mark


def test_booking_refusals_at_the_kiosk_issue_no_ticket(booking_kiosk: Kiosk, booking_hall: BrokerThread,
                                                       manual_clock: ManualClock, tmp_path: Path) -> None:
    tomorrow = _book(booking_hall, "2026-11-25T10:00")
    cancelled = _book(booking_hall, "2026-11-24T10:30")
    c = BrokerClient(booking_hall.endpoint)
    try:
        c.unbook(cancelled.code)
    finally:
        c.close()
    manual_clock.set(local(TUESDAY, 10, 20))
    booking_kiosk.ready()
    typo = cancelled.code[:-1] + ("2" if cancelled.code[-1] != "2" else "3")
    for text, code in ((tomorrow.qr, "BOOKING_WRONG_DAY"), (cancelled.code, "BOOKING_CANCELLED"),
                       (typo, "BOOKING_CODE_INVALID")):
        booking_kiosk.model.on_timeout()
        booking_kiosk.c.scan(text)
        booking_kiosk.pump(lambda: booking_kiosk.model.screen == Screen.CHECKIN_REFUSED, what=code)
        msg = booking_kiosk.model.message
        assert msg is not None and msg.code == code and msg.title.zh and msg.title.en
    assert _printed(tmp_path) == []
    c = BrokerClient(booking_hall.endpoint)
    try:
        assert c.request("snapshot")["state"]["tickets"] == {}  # no ticket issued by any refusal
    finally:
        c.close()


def test_a_lost_checkin_reply_is_asked_again_under_its_id_and_printed_once(booking_kiosk: Kiosk,
                                                                          booking_hall: BrokerThread,
                                                                          manual_clock: ManualClock,
                                                                          tmp_path: Path) -> None:
    b = _book(booking_hall)
    manual_clock.set(local(TUESDAY, 9, 55))
    booking_kiosk.ready()
    real = booking_kiosk.link.on_reply
    lost: list[str] = []

    def lose_first(rid: str, rep: Any) -> None:  # the broker checked in, but its reply never reached the kiosk
        if not lost:
            lost.append(rid)
            booking_kiosk.events.put(("reply", rid, {"status": "unavailable"}))
            return
        real(rid, rep)

    booking_kiosk.link.on_reply = lose_first
    booking_kiosk.c.scan(b.qr)
    booking_kiosk.pump(lambda: booking_kiosk.model.screen == Screen.CHECKIN_REFUSED, what="the lost reply")
    assert booking_kiosk.model.message is not None and booking_kiosk.model.message.code == "UNAVAILABLE"
    assert [e["code"] for e in booking_kiosk.journal.pending.values()] == [b.code]
    booking_kiosk.model.on_timeout()
    booking_kiosk.c.scan(b.qr)  # the citizen tries again: the same request id, the original ticket
    booking_kiosk.pump(lambda: booking_kiosk.model.screen == Screen.CHECKED_IN, what="the second try")
    booking_kiosk.pump(lambda: bool(_printed(tmp_path)), what="the printed ticket")
    c = BrokerClient(booking_hall.endpoint)
    try:
        assert len(c.request("snapshot")["state"]["tickets"]) == 1  # one ticket, not two
    finally:
        c.close()
    assert booking_kiosk.journal.pending == {}
