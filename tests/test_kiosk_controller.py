"""The kiosk's orchestration without Qt: :class:`queuehall.kiosk.controller.KioskController` with a real
broker on loopback (the default hall, whose help counter is window 12), a real :class:`Link`, a real
printer worker writing ESC/POS text tickets to files (which fail: a directory that is gone, a TCP port
nobody listens on, a FIFO nobody reads) and the journal on disk.

The test thread plays the GUI thread: the link's and the printer's callbacks are queued and
dispatched to the controller here, in order, as the Qt event loop does in the kiosk.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from queuehall.broker.config import load_config
from queuehall.kiosk.controller import KioskController, PrintWorker
from queuehall.kiosk.journal import KioskJournal
from queuehall.kiosk.model import KioskModel, KioskSettings, Phase, Screen
from queuehall.kiosk.printing import PrinterConfig
from queuehall.tools.escpos_decode import decode

from queuehall.client import BrokerClient, Link, StateMirror
from queuehall.clock import ManualClock
from queuehall.protocol import Reply
from queuehall.simulation import DEMO_PINS
from tests import broker_fixtures
from tests.broker_fixtures import BrokerThread
from tests.hall_factory import TUESDAY, local

manual_clock_fixture = broker_fixtures.manual_clock_fixture
start_broker_fixture = broker_fixtures.start_broker_fixture

SETTINGS = KioskSettings(return_ms=400, message_ms=400, print_failed_ms=400, idle_ms=60_000, status_ms=60_000)
HELP = "12号窗口（咨询投诉）"


def closed_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on (connecting is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Kiosk:
    """A kiosk without a screen: the controller, its model, a Link, a printer worker and a journal."""

    def __init__(self, endpoint: str, printer: PrinterConfig, journal_file: Path, clock: ManualClock,
                 name: str = "东门取号机") -> None:
        self.events: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self.journal = KioskJournal(journal_file, name)
        self.link = Link(endpoint, role="kiosk", name=name, client_id=self.journal.client_id, request_timeout=1.5)
        self.link.on_state = self._state
        self.link.on_connection = lambda up: self.events.put(("connection", up))
        self.link.on_reply = lambda rid, rep: self.events.put(("reply", rid, _reply(rep)))
        self.worker = PrintWorker(printer, on_done=lambda job, kind, outcome: self.events.put(("job", job, kind,
                                                                                              outcome)))
        self.model = KioskModel(settings=KioskSettings(**vars(SETTINGS)), clock=clock.now)
        self.c = KioskController(self.model, self.link, self.worker, self.journal, name=name)

    def _state(self, mirror: StateMirror) -> None:
        self.events.put(("state", {k: dict(v) if isinstance(v, dict) else v for k, v in mirror.state.items()}))

    def start(self) -> Kiosk:
        self.worker.start()
        self.link.start()
        self.c.poll()
        return self

    def stop(self) -> None:
        self.link.stop()

    def pump(self, until: Callable[[], Any], timeout: float = 8.0, what: str = "the kiosk") -> Any:
        """Hand the queued callbacks to the controller (as the GUI thread would) until ``until()`` holds."""
        deadline = time.monotonic() + timeout
        while True:
            value = until()
            if value:
                return value
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what}; screen {self.model.screen}, "
                                     f"journal {self.journal.pending}")
            try:
                event = self.events.get(timeout=min(left, 0.05))
            except queue.Empty:
                continue
            kind, *args = event
            if kind == "state":
                self.c.on_state(args[0])
            elif kind == "connection":
                self.c.on_connection(args[0])
            elif kind == "reply":
                self.c.on_reply(args[0], args[1])
            elif kind == "job":
                self.c.on_job(args[0], args[1], args[2])

    def ready(self) -> None:
        self.pump(lambda: self.model.screen == Screen.START and self.model.printer.code != "PRINTER_UNKNOWN",
                  what="the start screen")

    def take(self, service: str = "passport") -> None:
        """A citizen taps the service and confirms."""
        self.ready()
        assert self.model.tap_service(service)
        self.c.confirm()


def _reply(rep: Reply | None) -> dict[str, Any]:
    """A reply as the Qt link hands it to the kiosk (queuehall.qtlink.QtLink.replied)."""
    if rep is None:
        return {"status": "unavailable"}
    if rep.ok:
        return {"status": "ok", "result": rep.result or {}}
    return {"status": "error", "error": rep.error or {}}


@pytest.fixture
def hall(start_broker: Callable[..., BrokerThread]) -> BrokerThread:
    return start_broker(config=load_config())


@pytest.fixture
def kiosks(hall: BrokerThread, manual_clock: ManualClock, tmp_path: Path) -> Iterator[Callable[..., Kiosk]]:
    made: list[Kiosk] = []
    manual_clock.set(local(TUESDAY, 9))

    def make(printer: PrinterConfig, journal_file: Path | None = None) -> Kiosk:
        k = Kiosk(hall.endpoint, printer, journal_file or tmp_path / "state" / "kiosk.json", manual_clock).start()
        made.append(k)
        return k

    yield make
    for k in made:
        k.stop()


def admin(hall: BrokerThread) -> BrokerClient:
    return BrokerClient(hall.endpoint)


def broker_tickets(hall: BrokerThread) -> dict[str, str]:
    c = admin(hall)
    try:
        return {t["label"]: t["status"] for t in c.request("snapshot")["state"]["tickets"].values()}
    finally:
        c.close()


def printers(hall: BrokerThread) -> dict[str, Any]:
    c = admin(hall)
    try:
        return c.request("snapshot")["state"]["printers"]
    finally:
        c.close()


def file_printer(path: Path) -> PrinterConfig:
    return PrinterConfig(backend="file", path=str(path), mode="text", paper_mm=80)


def test_a_ticket_is_issued_printed_and_journalled_until_printed(kiosks: Callable[..., Kiosk], hall: BrokerThread,
                                                                tmp_path: Path) -> None:
    out = tmp_path / "tickets.bin"
    k = kiosks(file_printer(out))
    k.take()
    k.pump(lambda: k.model.screen == Screen.CONFIRMATION, what="the confirmation")
    assert "A001" in decode(out.read_bytes()).texts
    assert k.journal.pending == {}
    journal = json.loads((tmp_path / "state" / "kiosk.json").read_text(encoding="utf-8"))
    assert journal == {"version": 1, "client": k.journal.client_id, "pending": {}}
    assert broker_tickets(hall) == {"A001": "waiting"}


def test_a_print_failure_keeps_the_number_alerts_the_help_counter_and_is_reprinted_there(
        kiosks: Callable[..., Kiosk], hall: BrokerThread, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="queuehall.kiosk")
    printer_dir = tmp_path / "printer"
    printer_dir.mkdir()
    k = kiosks(file_printer(printer_dir / "tickets.bin"))
    k.take()
    # The printer said it was ready; its directory disappears while the number is being issued.
    k.pump(lambda: k.model.phase == Phase.REQUESTING, what="the request")
    printer_dir.rename(tmp_path / "gone")
    k.pump(lambda: k.model.screen == Screen.PRINT_FAILED, what="the print-failure notice")
    assert k.model.issued is not None and k.model.issued.attempts == 2  # printed once more first
    # The citizen keeps the number and its place, and is told where to go, in both languages.
    label, go = k.model.print_failed_info()  # type: ignore[misc]
    assert label == "A001"
    assert go.zh == f"请到{HELP}补打号票" and go.en == "Please go to Window 12 (Consultation and Complaints) for a " \
        "printed ticket"
    assert broker_tickets(hall) == {"A001": "waiting"}
    # No exception text on any citizen's screen: the staff line is the code alone; the details are logged.
    assert k.model.ask_staff_reason()[1] == "PRINTER_IO"
    assert "gone" not in repr(k.model.ask_staff_reason()) and "printer" not in k.model.ask_staff_reason()[1]
    assert any("printing A001 failed: PRINTER_IO" in r.getMessage() and str(printer_dir) in r.getMessage()
               for r in caplog.records)
    # The alert reaches the broker (and so the help counter's screen): kiosk, code, the unprinted number.
    k.pump(lambda: not k.journal.pending and k.c.my_printer().get("fault"), what="the alert")
    (record,) = printers(hall).values()
    assert record["name"] == "东门取号机" and record["fault"]["code"] == "PRINTER_IO"
    assert [u["label"] for u in record["unprinted"]] == ["A001"]
    assert record["kiosk"].endswith(k.journal.client_id)
    # Issuing stays stopped while the printer is broken.
    k.model.back_to_start(reset_language=True)
    assert k.model.screen == Screen.OUT_OF_SERVICE
    assert k.model.go_for_help().zh == f"请到{HELP}咨询"

    # The printer is fixed: the next status check finds it ready and the alert is cleared.
    (tmp_path / "gone").rename(printer_dir)
    k.c.poll()
    k.pump(lambda: k.model.printer.ready and not k.c.my_printer(), what="the alert cleared")
    assert printers(hall) == {}
    # The citizen comes to the help counter, which orders a reprint at the kiosk that issued the number.
    c = admin(hall)
    c.request("sign_in", counter=12, clerk="c12a", pin=_pin(12))
    order = c.request("reprint_ticket", ticket="A001", counter=12)
    assert order["kiosk"] == record["kiosk"] and order["ahead"] == 0
    k.pump(lambda: (printer_dir / "tickets.bin").exists() and not printers(hall), what="the reprint done")
    k.pump(lambda: not k.c._reprints, what="the reprint settled")
    k.c.poll()  # more state and status updates: the order is done, nothing is printed twice
    k.pump(lambda: k.c._status_job is None and k.events.empty(), what="quiet")
    decoded = decode((printer_dir / "tickets.bin").read_bytes())
    assert "A001" in decoded.texts and "补打号票" in decoded.text
    assert decoded.cut_count == 1
    assert k.model.screen == Screen.START
    c.close()


def _pin(counter: int) -> str:
    """The PIN of the A post of ``counter`` in the shipped hall."""
    cfg = load_config()
    return DEMO_PINS[cfg.counter(counter).clerk_a]  # type: ignore[union-attr]


def test_a_printer_on_a_closed_port_issues_nothing_and_the_staff_menu_reprints(
        kiosks: Callable[..., Kiosk], hall: BrokerThread, tmp_path: Path) -> None:
    offline = PrinterConfig(backend="network", host="127.0.0.1", port=closed_port(), mode="text", paper_mm=80,
                            timeout=0.5, status_timeout=0.2)
    k = kiosks(offline)
    k.pump(lambda: k.model.printer.code == "PRINTER_OFFLINE" and k.model.state.get("services"),
           what="the hall's state and the printer found offline")
    assert k.model.screen == Screen.OUT_OF_SERVICE
    reason, detail = k.model.out_of_service_reason()
    assert reason.zh == "号票打印机未连接" and detail == "PRINTER_OFFLINE"  # not "[Errno 111] Connection refused"
    assert "Errno" in k.model.printer.message.en  # which stays for the log and the staff settings
    assert broker_tickets(hall) == {}
    # From the staff menu: a reprint of a number this kiosk cannot print now is refused by the printer,
    # which raises the alert (so the help counter can send it to another kiosk).
    c = admin(hall)
    c.request("take_ticket", service="passport")
    c.close()
    replies: list[dict[str, Any]] = []
    k.c.order_reprint("a001", replies.append)
    k.pump(lambda: replies, what="the broker's answer")
    assert replies[0]["status"] == "ok" and replies[0]["result"]["ticket"]["label"] == "A001"
    k.pump(lambda: (printers(hall).get(next(iter(printers(hall)), "")) or {}).get("fault"), what="the alert")
    (record,) = printers(hall).values()
    assert record["reprints"] == [] and [u["label"] for u in record["unprinted"]] == ["A001"]


def test_a_kiosk_that_stops_between_issuing_and_printing_prints_the_number_when_it_restarts(
        kiosks: Callable[..., Kiosk], hall: BrokerThread, tmp_path: Path) -> None:
    journal_file = tmp_path / "state" / "kiosk.json"
    fifo = tmp_path / "stuck"
    os.mkfifo(fifo)  # a printer that never takes the bytes: the ticket is on its way when the kiosk "dies"
    first = kiosks(file_printer(fifo), journal_file)
    first.take()
    first.pump(lambda: first.model.phase == Phase.PRINTING, what="printing")
    entry = json.loads(journal_file.read_text(encoding="utf-8"))
    (pending,) = entry["pending"].values()
    assert pending["stage"] == "issued" and pending["ticket"]["label"] == "A001"
    first.stop()  # the kiosk is gone; its print job hangs on the FIFO
    threading.Thread(target=lambda: fifo.open("rb").read(), daemon=True).start()  # let its worker finish later

    out = tmp_path / "tickets.bin"
    second = kiosks(file_printer(out), journal_file)
    assert second.journal.client_id == first.journal.client_id  # the same kiosk to the broker
    second.pump(lambda: second.model.screen == Screen.CONFIRMATION, what="the recovered ticket printed")
    assert second.model.confirmation()[0] == "A001"  # type: ignore[index]
    assert "A001" in decode(out.read_bytes()).texts
    assert second.journal.pending == {} and broker_tickets(hall) == {"A001": "waiting"}
    assert printers(hall) == {}


def test_a_request_whose_reply_never_came_is_asked_again_after_a_restart_and_printed_or_reported(
        kiosks: Callable[..., Kiosk], hall: BrokerThread, tmp_path: Path) -> None:
    """The kiosk journalled take_ticket, the broker issued A001, and the kiosk died before the reply came.
    After the restart the same request id gets the original reply (no second number); the printer is
    down, so the alert is raised with A001 unprinted."""
    journal_file = tmp_path / "state" / "kiosk.json"
    journal = KioskJournal(journal_file, "东门取号机")
    journal.put("take-1", {"stage": "requested", "service": "passport", "priority": None})
    c = BrokerClient(hall.endpoint, client_id=journal.client_id)
    from queuehall.protocol import Request

    c.send(Request(type="take_ticket", id="take-1", args={"service": "passport"}))  # issued; reply "lost"
    c.close()
    offline = PrinterConfig(backend="network", host="127.0.0.1", port=closed_port(), mode="text", paper_mm=80,
                            timeout=0.5, status_timeout=0.2)
    k = kiosks(offline, journal_file)
    k.pump(lambda: not k.journal.pending, timeout=10, what="the request settled")
    assert broker_tickets(hall) == {"A001": "waiting"}  # one number, not two
    (record,) = printers(hall).values()
    assert record["fault"]["code"] == "PRINTER_OFFLINE" and [u["label"] for u in record["unprinted"]] == ["A001"]


def test_a_journal_that_cannot_be_read_is_set_aside_and_the_kiosk_starts(tmp_path: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "kiosk.json"
    path.write_text("{not json", encoding="utf-8")
    j = KioskJournal(path, "k")
    assert j.pending == {} and j.client_id.startswith("k-")
    assert [p.name for p in tmp_path.iterdir() if ".bad-" in p.name]
    assert any("unprinted numbers" in r.getMessage() for r in caplog.records)
    j.put("r1", {"stage": "requested", "service": "s", "priority": None})
    again = KioskJournal(path, "k")
    assert again.client_id == j.client_id and again.pending == {"r1": {"stage": "requested", "service": "s",
                                                                       "priority": None}}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".kiosk.json.")]  # no temporary file left
