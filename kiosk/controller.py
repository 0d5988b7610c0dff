"""The kiosk's orchestration, without Qt: issuing, printing, printer faults, reprints and recovery.

:class:`KioskController` sits between the view-model (:class:`kiosk.model.KioskModel`: what the screen
shows, what a tap does), the broker link (anything with ``request(type, request_id=None, **args) -> id``;
replies come back through :meth:`KioskController.on_reply`), the printer worker (:class:`PrintWorker`,
or anything with its ``status / print_ticket / test_print / configure`` methods returning job ids;
outcomes come back through :meth:`KioskController.on_job`) and the journal on disk
(:class:`kiosk.journal.KioskJournal`). The Qt window only forwards signals to it and draws the model;
tests drive it directly with a real Link, a real printer and a real broker.

The rules it carries out (docs/kiosk.md, docs/printing.md):

* **issuing**: printer check -> ``take_ticket`` -> print -> confirmation. Each step is journalled
  first, under the request id, so a kiosk that stops half-way settles the request when it starts
  again (below);
* **a print failure never costs the citizen their place**: the ticket is printed once more; if that
  fails too the ticket stays in the queue, the screen shows the number large with where to go (the
  hall's help counter), and ``printer_fault`` raises the alert staff see on the help counter's
  screen (sent again until the broker confirms it). Issuing stops until the printer reports ready;
  then ``printer_ok`` clears the alert. The printer's own error text goes to the log only;
* **reprints**: an order for this kiosk in the state's ``printers`` table (from the help counter, or
  from :meth:`order_reprint` in the staff menu) is printed once, between citizens, with the people
  now ahead, and answered with ``reprint_done`` (with the printer's code when it failed);
* **recovery** at start, from the journal: a ``take_ticket`` whose reply never came is sent again
  under the same request id (the broker answers with the original outcome), and an issued ticket
  that was not printed is printed (the confirmation shows it) or, when the printer is not ready,
  reported as a printer fault. So no unprinted number waits in the queue without staff knowing;
* **a reply lost while the citizen waited** (the screen said no ticket was issued): asked again
  under the same id once the broker answers; a ticket issued after all is voided, since nobody
  holds it.

Nothing here imports Qt or zmq.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

from queuehall.kiosk.journal import KioskJournal
from queuehall.kiosk.model import (
    NO_PRINTER_HEALTH,
    Action,
    CheckIn,
    CheckInTicket,
    CheckPrinter,
    Issued,
    KioskModel,
    PrinterHealth,
    PrintTicket,
    ReportFault,
    TakeTicket,
)
from queuehall.kiosk.printing import PrinterConfig, PrinterError, TicketPrinter
from queuehall.kiosk.ticket import TicketContent, TicketError

from queuehall.payloads import NO_TICKET, decode_ticket

log = logging.getLogger("queuehall.kiosk")
CHECKIN_KEPT = timedelta(hours=12)  # a check-in whose reply was lost waits this long for its citizen's next try

Reply = Mapping[str, Any]  # {"status": "ok", "result"} | {"status": "error", "error"} | {"status": "unavailable"}


class LinkLike(Protocol):
    """What the controller needs of the broker link (``queuehall.qtlink.QtLink``, ``queuehall.client.Link``)."""

    def request(self, type_: str, *, request_id: str | None = None, **args: Any) -> str: ...


class PrinterLike(Protocol):
    """What the controller needs of the printer worker: each call returns a job id at once."""

    def status(self) -> int: ...

    def print_ticket(self, fields: dict[str, Any]) -> int: ...


# --------------------------------------------------------------------------------------------------
# The printer worker


class PrintWorker:
    """Runs every printer operation, in order, on one worker thread (TicketPrinter is not thread-safe).

    Each call returns a job id at once; ``on_done(job, kind, outcome)`` follows **on the worker
    thread** (the Qt window re-emits it as a signal; tests queue it). ``outcome`` is the operation's
    result or the exception it raised (PrinterError, TicketError or anything unexpected): the worker
    never dies.
    """

    def __init__(self, config: PrinterConfig | None,
                 on_done: Callable[[int, str, Any], None] | None = None) -> None:
        self.config = config
        self.printer = TicketPrinter()
        self.on_done: Callable[[int, str, Any], None] = on_done or (lambda job, kind, outcome: None)
        self._jobs: queue.Queue[tuple[int, str, Callable[[], Any]] | None] = queue.Queue()
        self._ids = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the worker and connect to the configured printer."""
        self._thread = threading.Thread(target=self._run, name="kiosk-printer", daemon=True)
        self._thread.start()
        self.configure(self.config)

    def stop(self) -> None:
        """Finish the queued jobs and stop the worker."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join(10)
            self._thread = None
        self.printer.close()

    def _submit(self, kind: str, fn: Callable[[], Any]) -> int:
        with self._lock:
            self._ids += 1
            job = self._ids
        self._jobs.put((job, kind, fn))
        return job

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            job_id, kind, fn = job
            try:
                outcome = fn()
            except Exception as exc:  # reported to the controller, which decides what the citizen sees
                outcome = exc
            self.on_done(job_id, kind, outcome)

    def configure(self, config: PrinterConfig | None) -> int:
        """(Re)connect to ``config`` (None = no printer). Outcome: None or the PrinterError."""
        self.config = config

        def run() -> None:
            if config is not None:
                self.printer.open(config)  # keeps the config even when it raises: status() retries
            else:
                self.printer.close()
                self.printer = TicketPrinter()

        return self._submit("configure", run)

    def status(self) -> int:
        """Ask the printer how it is. Outcome: a PrinterStatus, or PrinterError when unconfigured."""
        return self._submit("status", self._printer_status)

    def _printer_status(self) -> Any:
        if self.printer.config is None:
            raise PrinterError("NO_PRINTER", NO_PRINTER_HEALTH.message.zh, NO_PRINTER_HEALTH.message.en)
        return self.printer.status()

    def print_ticket(self, fields: dict[str, Any]) -> int:
        """Print ``TicketContent(**fields)``. Outcome: a PrintResult or the error."""
        return self._submit("print", lambda: self.printer.print_ticket(TicketContent(**fields)))

    def test_print(self) -> int:
        """Print the printer's self-test ticket. Outcome: a PrintResult or the error."""
        return self._submit("test", self.printer.test_print)


def health_of(outcome: Any, near_end_blocks: bool = True) -> PrinterHealth:
    """A status job's outcome as the model's PrinterHealth (the technical text stays in ``message``,
    for the log and the staff settings; citizens see only ``reason``)."""
    if isinstance(outcome, PrinterError):
        if outcome.code == "NO_PRINTER":
            return NO_PRINTER_HEALTH
        return PrinterHealth.from_error(outcome.code, outcome.zh, outcome.en)
    if isinstance(outcome, Exception):
        return PrinterHealth.from_error("PRINTER_IO", f"打印机状态未知：{outcome}",
                                        f"printer status unknown: {outcome}")
    return PrinterHealth.from_status(outcome, near_end_blocks)


def error_of(outcome: Any) -> tuple[str, str, str] | None:
    """A print job's outcome as (code, zh, en), or None when it printed."""
    if isinstance(outcome, PrinterError | TicketError):
        return outcome.code, outcome.zh, outcome.en
    if isinstance(outcome, Exception):
        name = type(outcome).__name__
        return "PRINTER_IO", f"打印出错：{name}: {outcome}", f"print error: {name}: {outcome}"
    return None


def unavailable(reply: Reply) -> bool:
    return reply.get("status") == "unavailable"


# --------------------------------------------------------------------------------------------------
# The controller


class KioskController:
    """The kiosk's orchestration (see the module docstring). Every ``on_*`` method and every command
    runs on one thread (the GUI thread in the kiosk), and calls ``on_change()`` when the screen may
    have to be redrawn. ``name`` is the kiosk's name for staff (the alert on the help counter)."""

    def __init__(self, model: KioskModel, link: LinkLike, printer: Any, journal: KioskJournal | None = None,
                 *, name: str = "kiosk", on_change: Callable[[], None] | None = None) -> None:
        self.model = model
        self.link = link
        self.printer = printer
        self.journal = journal or KioskJournal(None, name)
        self.name = name
        self.on_change: Callable[[], None] = on_change or (lambda: None)
        self._requests: dict[str, Callable[[Reply], None]] = {}
        self._jobs: dict[int, Callable[[Any], None]] = {}
        self._status_job: int | None = None
        self._current: str | None = None  # request id of the ticket the model is issuing or printing
        # ticket id -> (stage, the printer's failure code or None): "printing", "answering" (reprint_done on its
        # way), "unanswered" (to send again), "answered" (until the order leaves the state: never print it twice)
        self._reprints: dict[int, tuple[str, str | None]] = {}
        self._ok_sent = False

    @property
    def client_id(self) -> str:
        """The kiosk's stable client id (the link must send its requests under it)."""
        return self.journal.client_id

    # ------------------------------------------------------------------ inputs

    def on_state(self, state: dict[str, Any]) -> None:
        """A new hall state from the broker."""
        self.model.on_state(state)
        self.settle()
        self.on_change()

    def on_connection(self, up: bool) -> None:
        """The broker link came up or went silent."""
        self.model.on_connection(up)
        log.info("broker %s", "connected" if up else "unreachable")
        self.on_change()

    def on_reply(self, rid: str, reply: Reply) -> None:
        """A broker reply (or ``{"status": "unavailable"}``) to request ``rid``."""
        handler = self._requests.pop(rid, None)
        if handler is not None:
            handler(reply)
            self.on_change()

    def on_job(self, job: int, kind: str, outcome: Any) -> None:
        """A printer job finished."""
        handler = self._jobs.pop(job, None)
        if handler is not None:
            handler(outcome)
            self.on_change()

    def expect_job(self, job: int, handler: Callable[[Any], None]) -> None:
        """Call ``handler(outcome)`` when printer job ``job`` (started elsewhere, e.g. the settings) ends."""
        self._jobs[job] = handler

    def _request(self, handler: Callable[[Reply], None], type_: str, *, request_id: str | None = None,
                 **args: Any) -> str:
        rid = self.link.request(type_, request_id=request_id, **args)
        self._requests[rid] = handler
        return rid

    # ------------------------------------------------------------------ issuing

    def confirm(self) -> None:
        """The citizen tapped "take a ticket" (double taps are ignored by the model)."""
        self._run(self.model.confirm())
        self.on_change()

    def _run(self, action: Action | None) -> None:
        """Carry out one action from the model."""
        if action is None:
            return
        if isinstance(action, CheckPrinter):
            self._jobs[self.printer.status()] = self._precheck_done
        elif isinstance(action, TakeTicket):
            self._take(action)
        elif isinstance(action, PrintTicket):
            self._jobs[self.printer.print_ticket(action.fields)] = self._print_done
        elif isinstance(action, ReportFault):
            self._report_fault(action)
        elif isinstance(action, CheckIn):
            self._checkin(action)
        elif isinstance(action, CheckInTicket):
            self._checkin_ticket(action)

    def _precheck_done(self, outcome: Any) -> None:
        self._run(self.model.on_precheck(health_of(outcome, self.model.settings.near_end_blocks)))

    def _take(self, action: TakeTicket) -> None:
        # Journalled before it is sent: a kiosk that stops now asks again under the same id when it restarts.
        rid = uuid.uuid4().hex
        self.journal.put(rid, {"stage": "requested", "service": action.service, "priority": action.priority})
        self._current = rid
        self._request(self._take_done, "take_ticket", request_id=rid, service=action.service,
                      priority=action.priority)

    def _take_done(self, reply: Reply) -> None:
        rid = self._current or ""
        status = reply.get("status")
        if status == "ok":
            t = decode_ticket((reply.get("result") or {}).get("ticket")) or NO_TICKET
            log.info("issued %s (%s)", t.label, t.service)
        else:
            log.warning("take_ticket: %s", reply.get("error") or status)
        action = self.model.on_take_reply(reply)
        if isinstance(action, PrintTicket) and self.model.issued is not None:
            self.journal.put(rid, _issued_entry(self.model.issued))
        elif status == "unavailable":
            # The broker may have issued the number and lost the reply; the citizen was told no ticket was
            # issued and has gone: settle() asks again under the same id, and voids a number issued after all.
            entry = dict(self.journal.pending.get(rid) or {"stage": "requested"}, told_no_ticket=True)
            self.journal.put(rid, entry)
            self._current = None
        else:
            self.journal.drop(rid)
            self._current = None
        self._run(action)

    def _print_done(self, outcome: Any) -> None:
        error = error_of(outcome)
        issued = self.model.issued
        label = issued.ticket.get("label") if issued else "?"
        if error is None:
            log.info("printed %s (%d bytes, encode %.0f ms, send %.0f ms)", label, outcome.bytes_sent,
                     outcome.encode_ms, outcome.send_ms)
        else:
            log.error("printing %s failed: %s %s", label, error[0], error[2])  # the details, for staff only
        action = self.model.on_print_result(error)
        if error is None and self._current is not None:
            self.journal.drop(self._current)
            self._current = None
        self._run(action)

    # ------------------------------------------------------------------ check-in (bookings and remote tickets)

    def open_checkin(self) -> None:
        """The start page's "预约签到 / Appointment check-in" button."""
        self.model.open_checkin()
        self.on_change()

    def type_code(self, key: str) -> None:
        """A key of the check-in keypad (a letter, "back" or "clear")."""
        self.model.type_code(key)
        self.on_change()

    def submit_code(self) -> None:
        """The keypad's "签到 / Check in"."""
        self._run(self.model.submit_code())
        self.on_change()

    def scan(self, text: str) -> None:
        """A barcode scanner read ``text`` (kiosk.checkin.ScanDetector found it among the keys)."""
        log.info("scanned %d characters", len(text))  # never the payload: a page token is a secret
        self._run(self.model.scan(text))
        self.on_change()

    def _checkin(self, action: CheckIn) -> None:
        """``checkin {code}``, journalled like a ticket request: a kiosk that stops before the reply asks again
        under the same id when it restarts, and prints the ticket. A check-in whose reply was lost while the
        citizen waited is asked again under the same id when the same code is entered again, so its ticket
        is printed then (the broker answers a repeated id with the original reply, never a second ticket)."""
        rid = next((r for r, e in self.journal.pending.items()
                    if e.get("kind") == "checkin" and e.get("code") == action.code and e["stage"] == "requested"),
                   None) or uuid.uuid4().hex
        self.journal.put(rid, {"stage": "requested", "kind": "checkin", "code": action.code,
                               "at": self.model.clock().isoformat()})
        self._current = rid
        self._request(self._checkin_done, "checkin", request_id=rid, code=action.code)

    def _checkin_done(self, reply: Reply) -> None:
        rid = self._current or ""
        status = reply.get("status")
        if status == "ok":
            result = reply.get("result") or {}
            log.info("checked in booking, ticket %s%s", (result.get("ticket") or {}).get("label"),
                     " (late: a normal ticket)" if result.get("late") else "")
        else:
            log.warning("checkin: %s", (reply.get("error") or {}).get("code") or status)
        action = self.model.on_checkin_reply(reply)
        if isinstance(action, PrintTicket) and self.model.issued is not None:
            self.journal.put(rid, _issued_entry(self.model.issued))
        elif status == "unavailable":
            # Kept, with told_no_ticket: settle() leaves it for the citizen's next try with the same code.
            self.journal.put(rid, dict(self.journal.pending.get(rid) or {}, told_no_ticket=True))
            self._current = None
        else:
            self.journal.drop(rid)
            self._current = None
        self._run(action)

    def _checkin_ticket(self, action: CheckInTicket) -> None:
        """A remote ticket's holder arrived: find the ticket by its page token when that is all the QR code
        held (``ticket_by_token``), then ``check_in`` it. Nothing is printed: the phone holds the ticket."""
        def checked(reply: Reply) -> None:
            if reply.get("status") == "ok":
                log.info("checked in remote ticket %s", ((reply.get("result") or {}).get("ticket") or {}).get("label"))
            else:
                log.warning("check_in: %s", (reply.get("error") or {}).get("code") or reply.get("status"))
            self.model.on_ticket_checkin_reply(reply)

        def found(reply: Reply) -> None:
            ticket = decode_ticket((reply.get("result") or {}).get("ticket"))
            if reply.get("status") != "ok" or ticket is None or ticket.id is None:
                checked(reply)
                return
            self._request(checked, "check_in", ticket=str(ticket.id))

        if action.id is not None:
            self._request(checked, "check_in", ticket=str(action.id))
        else:
            self._request(found, "ticket_by_token", token=action.token)

    # ------------------------------------------------------------------ printer faults

    def _report_fault(self, fault: ReportFault) -> None:
        """The printer failed on a ticket: journal it, then raise the alert at the broker."""
        rid = self._current or f"fault-{fault.ticket}"
        self._current = None
        self.journal.put(rid, {"stage": "fault", "ticket": {"id": fault.ticket, "label": fault.label},
                               "code": fault.code})
        self._ok_sent = False
        self._send_fault(rid)

    def _send_fault(self, rid: str) -> None:
        entry = self.journal.pending[rid]
        ticket = entry.get("ticket") or {}

        def done(reply: Reply) -> None:
            if unavailable(reply):
                return  # sent again by settle()
            err = reply.get("error") or {}
            if err.get("code") == "UNKNOWN_TICKET" and entry.get("ticket"):
                # The ticket left the hall meanwhile (cancelled by staff): raise the alert without it.
                self.journal.put(rid, {**entry, "ticket": None})
                self._send_fault(rid)
                return
            if reply.get("status") == "ok":
                log.warning("printer-fault alert raised for %s (%s)", ticket.get("label") or "-", entry["code"])
            else:
                log.error("the broker refused the printer-fault alert: %s", err)
            self.journal.drop(rid)

        args: dict[str, Any] = {"code": entry["code"], "name": self.name}
        if ticket:
            args["ticket"] = str(ticket["id"])
        self._request(done, "printer_fault", **args)

    def my_printer(self) -> dict[str, Any]:
        """This kiosk's record in the state's ``printers`` table (empty when it has none). The broker
        keys it by the client id it sees: ours, prefixed by the device key's name with CurveZMQ."""
        for key, record in (self.model.state.get("printers") or {}).items():
            if key == self.client_id or key.endswith("/" + self.client_id):
                return dict(record or {})
        return {}

    # ------------------------------------------------------------------ settling and reprints

    def settle(self) -> None:
        """Carry on with everything owed to the broker or the printer: unsettled journal entries,
        clearing a fault alert, reprint orders. Called on every state update and status report."""
        if not self.model.connected:
            return
        for rid, entry in list(self.journal.pending.items()):
            if rid in self._requests or rid == self._current:
                continue  # on its way
            stage = entry["stage"]
            if stage == "requested" and entry.get("kind") == "checkin":
                if entry.get("told_no_ticket"):
                    if _older_than(entry.get("at"), self.model.clock(), CHECKIN_KEPT):
                        self.journal.drop(rid)  # its citizen did not try again: the booking's day is over
                else:
                    self._request(functools.partial(self._retake_done, rid), "checkin", request_id=rid,
                                  code=entry["code"])
            elif stage == "requested":
                self._request(functools.partial(self._retake_done, rid), "take_ticket", request_id=rid,
                              service=entry["service"], priority=entry.get("priority"))
            elif stage == "issued":
                self._recover_print(rid, entry)
            elif stage == "fault":
                self._send_fault(rid)
            elif stage == "orphan":
                self._void_orphan(rid, entry)
        self._clear_fault()
        self._do_reprints()

    def _retake_done(self, rid: str, reply: Reply) -> None:
        """The answer to a ``take_ticket`` asked again under its original id."""
        if unavailable(reply):
            return  # still unknown: asked again on the next state update
        entry = self.journal.pending.get(rid) or {}
        result = reply.get("result") or {}
        ticket = result.get("ticket")
        if reply.get("status") != "ok" or not ticket:
            log.info("unsettled request %s: nothing was issued (%s)", rid, (reply.get("error") or {}).get("code"))
            self.journal.drop(rid)
            return
        if entry.get("told_no_ticket"):
            self.journal.put(rid, {"stage": "orphan", "ticket": {"id": ticket["id"], "label": ticket.get("label")}})
            self._void_orphan(rid, self.journal.pending[rid])
            return
        # The kiosk stopped before it learnt the number: print it now (or report it if the printer fails).
        log.warning("recovered %s, issued before the kiosk stopped and never printed", ticket.get("label"))
        url = result.get("url")
        booking = result.get("booking")
        issued = Issued(ticket=dict(ticket), ahead=int(result.get("ahead") or 0),
                        wait_minutes=int(result.get("estimated_wait_minutes") or 0), fields={},
                        url=url if isinstance(url, str) and url else None,
                        booking=dict(booking) if isinstance(booking, dict) else None, late=bool(result.get("late")))
        self.journal.put(rid, _issued_entry(issued))
        self._recover_print(rid, self.journal.pending[rid])

    def _recover_print(self, rid: str, entry: dict[str, Any]) -> None:
        """Print a ticket issued before the kiosk stopped, or report it when the printer cannot."""
        m = self.model
        if m.printer.code == "PRINTER_UNKNOWN" or m.busy or m.settings_open or self._current is not None:
            return  # not now: the next state update or status report tries again
        ticket = entry["ticket"]
        if not m.printer.ready:
            self.journal.put(rid, {"stage": "fault", "ticket": {"id": ticket["id"], "label": ticket.get("label")},
                                   "code": m.printer.code or "PRINTER_IO"})
            log.error("%s was issued before the kiosk stopped and cannot be printed (%s): alerting staff",
                      ticket.get("label"), m.printer.code)
            self._send_fault(rid)
            return
        issued = Issued(ticket=dict(ticket), ahead=int(entry.get("ahead") or 0),
                        wait_minutes=int(entry.get("wait_minutes") or 0), fields={}, url=entry.get("url"),
                        booking=entry.get("booking"), late=bool(entry.get("late")))
        issued.fields = m.ticket_fields(issued)
        self._current = rid
        self._run(m.recover(issued))

    def _void_orphan(self, rid: str, entry: dict[str, Any]) -> None:
        ticket = entry["ticket"]

        def done(reply: Reply) -> None:
            if unavailable(reply):
                return  # tried again on the next state update
            log.warning("voided %s: issued while the broker's reply was lost, never printed (%s)",
                        ticket.get("label"), reply.get("status"))
            self.journal.drop(rid)

        self._request(done, "void_ticket", ticket=str(ticket["id"]),
                      reason="reply lost, never printed / 回复丢失，未出票")

    def _clear_fault(self) -> None:
        """The printer works again and nothing is left to report: clear this kiosk's alert."""
        if self._ok_sent or not self.model.printer.ready or not (self.my_printer().get("fault")):
            return
        if any(e["stage"] == "fault" for e in self.journal.pending.values()):
            return

        def done(reply: Reply) -> None:
            self._ok_sent = False
            if not unavailable(reply):
                log.info("printer works again: alert cleared")

        self._ok_sent = True
        self._request(done, "printer_ok", name=self.name)

    def _do_reprints(self) -> None:
        """Print the reprint orders for this kiosk, one at a time and between citizens."""
        m = self.model
        orders = self.my_printer().get("reprints") or []
        ordered = {int(o["ticket"]["id"]) for o in orders}
        for tid, (stage, _code) in list(self._reprints.items()):
            if tid not in ordered and stage != "printing":
                del self._reprints[tid]  # the broker has the answer: a new order for it may come later
        for order in orders:
            tid = int(order["ticket"]["id"])
            if tid in self._reprints:
                stage, code = self._reprints[tid]
                if stage == "unanswered":
                    self._reprint_done(tid, code)  # printed; the answer was lost: say it again, never reprint
                continue
            if m.printer.code == "PRINTER_UNKNOWN":
                return
            if not m.printer.ready:
                log.error("reprint of %s: the printer is not ready (%s)", order["ticket"].get("label"),
                          m.printer.code)
                self._reprint_done(tid, m.printer.code)
                continue
            if m.busy or self._current is not None or any(st == "printing" for st, _ in self._reprints.values()):
                return
            self._reprints[tid] = ("printing", None)
            job = self.printer.print_ticket(m.reprint_fields(order))
            self._jobs[job] = functools.partial(self._reprinted, tid, order)

    def _reprinted(self, tid: int, order: dict[str, Any], outcome: Any) -> None:
        error = error_of(outcome)
        label = order["ticket"].get("label")
        if error is None:
            log.info("reprinted %s", label)
        else:
            log.error("reprinting %s failed: %s %s", label, error[0], error[2])
            if error[0].startswith("PRINTER_") or error[0] in ("PAPER_OUT", "COVER_OPEN"):
                self.model.on_printer_status(PrinterHealth.from_error(*error))
        self._reprint_done(tid, None if error is None else error[0])

    def _reprint_done(self, tid: int, code: str | None) -> None:
        def done(reply: Reply) -> None:
            self._reprints[tid] = ("unanswered" if unavailable(reply) else "answered", code)

        self._reprints[tid] = ("answering", code)
        args: dict[str, Any] = {"ticket": str(tid), "name": self.name}
        if code is not None:
            args["code"] = code
        self._request(done, "reprint_done", **args)

    def order_reprint(self, ticket: str, done: Callable[[Reply], None]) -> None:
        """The staff menu: order a reprint of ``ticket`` (a number such as "A012") at this kiosk.
        ``done(reply)`` gets the broker's answer; the order itself arrives with the state."""
        self._request(done, "reprint_ticket", ticket=ticket.strip().upper())

    # ------------------------------------------------------------------ printer status

    def poll(self) -> None:
        """Ask the printer for its status (unless a query is already queued or a ticket is in flight)."""
        if self._status_job is not None or self.model.busy:
            return
        job = self.printer.status()
        self._status_job = job
        self._jobs[job] = self._status_done

    def _status_done(self, outcome: Any) -> None:
        self._status_job = None
        health = health_of(outcome, self.model.settings.near_end_blocks)
        if health.code != self.model.printer.code:
            log.info("printer: %s%s", health.code or "ready", f" ({health.message.en})" if health.code else "")
        self.model.on_printer_status(health)
        self.settle()


def _older_than(at: Any, now: datetime, age: timedelta) -> bool:
    try:
        return now - datetime.fromisoformat(str(at)) > age
    except (TypeError, ValueError):
        return True


def _issued_entry(issued: Issued) -> dict[str, Any]:
    # The ticket's printed fields are rebuilt from these when it is recovered (JSON has no tuples).
    entry = {"stage": "issued", "ticket": issued.ticket, "ahead": issued.ahead, "wait_minutes": issued.wait_minutes,
             "url": issued.url}
    if issued.booking is not None:  # printed again with its appointment mark
        entry.update(booking=issued.booking, late=issued.late)
    return entry
