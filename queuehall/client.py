"""The client library every kiosk, counter, display and the CLI use to talk to the broker.

* :class:`BrokerClient`: blocking request/reply over a DEALER with a timeout and
  retries (the zguide's Lazy Pirate: on a timeout the socket is closed and reopened
  and the *same* request id is sent again, so the broker answers a retry with the
  original reply instead of doing the work twice).
* :class:`StateMirror`: the hall state rebuilt from a snapshot plus sequenced
  events (the zguide's Clone). It tells the caller when it must resynchronise
  (a gap in the sequence, or a new broker epoch).
* :class:`Link`: a background thread that owns the sockets, keeps the mirror in
  sync, watches the heartbeat (a broker silent for 3 s is reported dead and the
  link reconnects with backoff) and runs requests without blocking the caller. The
  Qt adapter (``queuehall.qtlink``) turns its callbacks into Qt signals.
"""

from __future__ import annotations

import itertools
import logging
import math
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from queuehall.clock import HallClock
from queuehall.protocol import (
    TOPIC_EVENT,
    TOPIC_HEARTBEAT,
    ProtocolError,
    Reply,
    Request,
    decode_publication,
    decode_reply,
    encode_request,
    events_port,
)

# The request/reply client lives in queuehall.rpc, which a one-command process (queuehall call N) imports alone.
from queuehall.rpc import (  # noqa: F401  (part of this module's interface)
    ENV_BROKER,
    STANDBY_CODE,
    STANDBY_PAUSE,
    BrokerUnavailable,
    CommandRefused,
    Security,
    _readable,
    _socket,
    _standby,
    parse_endpoint,
    parse_endpoints,
)
from queuehall.rpc import BrokerClient as RpcClient

log = logging.getLogger("queuehall.client")

DEAD_AFTER = 3.0  # seconds without any publication (heartbeats come every second)
# A standby pair: after the serving broker's connection dropped, the link moves to the other address at once and
# reports the hall lost only if no broker serves within this long (the standby's takeover after a crash: the
# lease, 2 s, runs out and it takes it within a quarter second; docs/standby.md "When a connection drops").
STANDBY_GRACE = 3.0
SNAPSHOT_TIMEOUT = 15.0  # a snapshot is asked for once and awaited this long before asking again
PING_SECONDS = 1.0  # presence pings; the broker's PRESENCE_TIMEOUT must be several of these
RETRY_SECONDS = 1.0  # a request unanswered this long is sent again (same id) until its time-out
RECENT_CALLS = 30

@dataclass(frozen=True)
class Slot:
    """One appointment slot of a service (docs/protocol.md ``slots``): hall-local start and end
    (``YYYY-MM-DDTHH:MM``), capacity, bookings taken and places left."""

    start: str
    end: str
    capacity: int
    booked: int
    free: int

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Slot:
        return cls(start=str(d["start"]), end=str(d["end"]), capacity=int(d.get("capacity") or 0),
                   booked=int(d.get("booked") or 0), free=int(d.get("free") or 0))


@dataclass(frozen=True)
class Booking:
    """A booking (预约) as the broker describes it (docs/protocol.md, "Bookings"). ``raw`` keeps the whole
    record, fields added later included."""

    code: str
    service: str
    slot: str
    state: str
    qr: str
    slot_end: str = ""
    service_name_zh: str = ""
    service_name_en: str = ""
    hall: str = ""
    contact_masked: str | None = None
    ticket: str | None = None
    checked_in_at: str | None = None
    raw: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Booking:
        raw = d.get("service_name")
        name: dict[str, Any] = raw if isinstance(raw, dict) else {}
        return cls(code=str(d["code"]), service=str(d.get("service") or ""), slot=str(d.get("slot") or ""),
                   state=str(d.get("state") or ""), qr=str(d.get("qr") or f"queuehall:booking:{d['code']}"),
                   slot_end=str(d.get("slot_end") or ""), service_name_zh=str(name.get("zh") or ""),
                   service_name_en=str(name.get("en") or ""), hall=str(d.get("hall") or ""),
                   contact_masked=d.get("contact_masked"), ticket=d.get("ticket"),
                   checked_in_at=d.get("checked_in_at"), raw=dict(d))


@dataclass(frozen=True)
class CheckedIn:
    """The answer to ``checkin``: the booking (now checked in), its ticket, and whether the citizen came too
    late for the appointment (then the ticket is a normal walk-in ticket)."""

    booking: Booking
    ticket: dict[str, Any]
    late: bool


class BrokerClient(RpcClient):
    """:class:`queuehall.rpc.BrokerClient` (blocking request/reply with timeouts and retries) with the appointment
    requests as methods returning decoded records. The call button imports queuehall.rpc alone and does without."""

    # -- appointments (预约; docs/protocol.md, "Bookings"): each raises CommandRefused with the broker's code

    def slots(self, service: str, date: str) -> list[Slot]:
        """The appointment slots of ``service`` on ``date`` (``YYYY-MM-DD``, hall-local)."""
        return [Slot.from_dict(s) for s in self.request("slots", service=service, date=date).get("slots") or []]

    def book(self, service: str, slot: str, contact: str | None = None) -> Booking:
        """Book ``slot`` (``YYYY-MM-DDTHH:MM``, hall-local) of ``service``; ``contact`` (a phone or ID number)
        is optional, kept masked and hashed by the broker."""
        return Booking.from_dict(self.request("book", service=service, slot=slot, contact=contact)["booking"])

    def unbook(self, code: str) -> Booking:
        """Cancel the booking ``code``; the answer is the booking, cancelled."""
        return Booking.from_dict(self.request("unbook", code=code)["booking"])

    def checkin(self, code: str) -> CheckedIn:
        """Check the booking ``code`` in (kiosk, web, admin): its ticket is issued."""
        result = self.request("checkin", code=code)
        return CheckedIn(Booking.from_dict(result["booking"]), dict(result.get("ticket") or {}),
                         bool(result.get("late")))

    def bookings(self, date: str, service: str | None = None) -> list[Booking]:
        """The bookings of ``date`` (``YYYY-MM-DD``), of one service or all."""
        return [Booking.from_dict(b) for b in self.request("bookings", date=date, service=service).get("bookings")
                or []]


def wait_until_answering(endpoint: str, *, security: Security | None = None, timeout: float = 30.0,
                         give_up: Callable[[], bool] = lambda: False) -> bool:
    """Ping the broker at ``endpoint`` until it answers (True; a standby's BROKER_STANDBY is no answer); False
    after ``timeout`` seconds or once ``give_up()`` is true (checked about twice a second).

    Uses a ZeroMQ context of its own and ends it before returning, so no ZeroMQ I/O thread is left
    running: a caller that forks afterwards (``queuehall demo`` starting its screens) forks a
    single-threaded process.
    """
    context = zmq.Context()
    client = BrokerClient(endpoint, security=security, timeout=0.5, retries=0, context=context)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not give_up():
            try:
                client.request("ping")
                return True
            except BrokerUnavailable:
                continue
            except CommandRefused as err:  # a standby (docs/standby.md): up, but not serving yet
                if err.code != STANDBY_CODE:
                    raise
                time.sleep(STANDBY_PAUSE)
        return False
    finally:
        client.close()
        context.term()


class StateMirror:
    """The hall state as screens see it, kept current from a snapshot and events."""

    def __init__(self, hall_clock: HallClock | None = None) -> None:
        self.epoch: str | None = None
        self.seq = 0
        self.state: dict[str, Any] = {}
        self.synced = False
        # The hall's time from the broker (snapshot and heartbeats): every screen's "now".
        self.hall_clock = hall_clock if hall_clock is not None else HallClock()

    def load(self, snapshot: dict[str, Any]) -> None:
        """Start over from ``snapshot``, which the mirror takes over: events change it in place
        (a copy of a whole hall's state cost each screen more than decoding it)."""
        self.epoch = snapshot["epoch"]
        self.seq = int(snapshot["seq"])
        self.state = snapshot["state"]
        self.synced = True
        self.hall_clock.observe(self.state.get("now"))

    def apply(self, msg: dict[str, Any]) -> str:
        """Apply one publication: returns ``"applied"``, ``"old"`` (already in the
        snapshot), or ``"resync"`` (gap or new epoch: take a fresh snapshot)."""
        if msg.get("type") == "heartbeat":
            self.hall_clock.observe(msg.get("now"))  # the broker's time, whatever the mirror's state
        if not self.synced:
            return "resync"
        if msg.get("epoch") != self.epoch:
            self.synced = False
            return "resync"
        seq = int(msg.get("seq", 0))
        if msg.get("type") == "heartbeat":
            if seq > self.seq:  # we missed events that were published before this beat
                self.synced = False
                return "resync"
            return "old"
        if seq <= self.seq:
            return "old"
        if seq != self.seq + 1:
            self.synced = False
            return "resync"
        self.seq = seq
        for table, records in (msg.get("set") or {}).items():
            self.state.setdefault(table, {}).update(records)
        for table, keys in (msg.get("del") or {}).items():
            for k in keys:
                self.state.get(table, {}).pop(k, None)
        ev = msg.get("event") or {}
        if ev.get("type") == "ticket_called":
            calls = self.state.setdefault("recent_calls", [])
            calls.append(ev)
            del calls[:-RECENT_CALLS]
        # The typed payload of a call or transfer, decoded once here for every screen (queuehall/payloads.py).
        from queuehall.payloads import decode_event

        msg["payload"] = decode_event(ev)
        return "applied"

    # Convenience views for the GUIs.
    def services(self) -> list[dict[str, Any]]:
        order = self.state.get("service_order") or list(self.state.get("services", {}))
        return [self.state["services"][c] for c in order if c in self.state.get("services", {})]

    def counters(self) -> list[dict[str, Any]]:
        return sorted(self.state.get("counters", {}).values(), key=lambda c: c["number"])

    def waiting(self, service: str | None = None) -> list[dict[str, Any]]:
        ts = [t for t in self.state.get("tickets", {}).values() if t["status"] == "waiting"
              and (service is None or t["queue_service"] == service)]
        return sorted(ts, key=lambda t: (t.get("queued_at") or t["entered_at"] or "", t["id"]))


class Link:
    """A background thread keeping sockets, heartbeat, mirror and requests for one device.

    Callbacks run on the link thread; the Qt adapter re-emits them as signals.
    ``on_event(msg)`` fires for each applied event (never for snapshot contents),
    ``on_state(mirror)`` after a snapshot or event, ``on_connection(bool)`` when the
    broker is found alive or dead, ``on_reply(request_id, reply)`` for requests.
    """

    def __init__(self, endpoint: str | None = None, *, role: str, name: str = "",
                 counter: int | None = None, security: Security | None = None,
                 client_id: str | None = None, request_timeout: float = 3.0,
                 context: zmq.Context | None = None) -> None:
        self.endpoints = parse_endpoints(endpoint)
        self._current = 0  # the broker this link talks to now (it moves on when that one fails)
        self.role, self.name, self.counter = role, name or role, counter
        self.security = security
        self.client_id = client_id or f"{role}-{uuid.uuid4().hex[:10]}"
        self.request_timeout = request_timeout
        self.ctx = context or zmq.Context.instance()
        self.mirror = StateMirror()
        # Which tickets the snapshot brings (docs/protocol.md): a kiosk shows none and a counter only
        # those it may see, so after a broker restart the hall's screens resynchronise sooner.
        self.snapshot_tickets: Any = (
            "none" if role == "kiosk" else {"counter": counter} if role == "counter" and counter is not None else "all")
        self.alive = False
        self.resyncs = 0  # snapshots loaded (first sync included): for diagnostics and tests
        self.callback_errors = 0  # callbacks that raised (logged; the link carried on)
        self.on_event: Callable[[dict[str, Any]], None] = lambda msg: None
        self.on_state: Callable[[StateMirror], None] = lambda m: None
        self.on_connection: Callable[[bool], None] = lambda up: None
        self.on_reply: Callable[[str, Reply | None], None] = lambda rid, rep: None
        self._outbox: queue.Queue[Request] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake_addr = f"inproc://queuehall-link-{uuid.uuid4().hex}"
        self._ids = itertools.count(1)
        self._resubscribe = threading.Event()

    @property
    def host(self) -> str:
        return self.endpoints[self._current][0]

    @property
    def port(self) -> int:
        return self.endpoints[self._current][1]

    @property
    def hall_clock(self) -> HallClock:
        """The hall's time as the broker tells it (snapshot and heartbeats), advanced locally between
        them: what every screen must take as "now" instead of its PC's clock."""
        return self.mirror.hall_clock

    # -- public API (any thread)

    def start(self) -> None:
        """Start the link thread (again after :meth:`stop`: the mirror is kept and resynchronised)."""
        self._stop.clear()
        self.alive = False
        # A new address each time: the old one is released only after its socket closes, later.
        self._wake_addr = f"inproc://queuehall-link-{uuid.uuid4().hex}"
        self._wake_rx = self.ctx.socket(zmq.PAIR)
        self._wake_rx.bind(self._wake_addr)
        self._thread = threading.Thread(target=self._run, name=f"link-{self.role}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and close its sockets; the broker sees the device offline later."""
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(5)

    def request(self, type_: str, *, request_id: str | None = None, **args: Any) -> str:
        """Queue a command; its reply arrives through ``on_reply`` with the returned id.

        A request that gets no reply is retried (same id) until ``request_timeout``
        has passed; then ``on_reply(id, None)`` reports the broker unavailable. Sending
        the same ``request_id`` again later (e.g. after a reconnect) asks the broker for
        the original outcome: an accepted command is answered with its first reply."""
        req = Request(type=type_, args={k: v for k, v in args.items() if v is not None},
                      client=self.client_id)
        if request_id:
            req.id = request_id
        self._outbox.put(req)
        self._wake()
        return req.id

    def resubscribe(self) -> None:
        """Drop the event subscription and open a new one. Events published meanwhile are
        missed, which the mirror notices (a gap) and repairs with a fresh snapshot."""
        self._resubscribe.set()
        self._wake()

    def _wake(self) -> None:
        s = self.ctx.socket(zmq.PAIR)
        s.linger = 0
        try:
            s.connect(self._wake_addr)
            s.send(b"", zmq.NOBLOCK)
        except zmq.ZMQError:
            pass
        finally:
            s.close(0)

    # -- the link thread

    def _open(self) -> None:
        self._dealer = _socket(self.ctx, zmq.DEALER, self.security)
        # The socket monitor tells the moment the broker's connection drops (its process ended: the kernel
        # closed its sockets), instead of waiting DEAD_AFTER for its silence. A machine that lost its power
        # or its network sends nothing: for it the silence still decides.
        self._monitor = self._dealer.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        self._poller.register(self._monitor, zmq.POLLIN)
        self._dealer.connect(f"tcp://{self.host}:{self.port}")
        self._poller.register(self._dealer, zmq.POLLIN)
        self._open_sub()

    def _open_sub(self) -> None:
        self._sub = _socket(self.ctx, zmq.SUB, self.security)
        self._sub.setsockopt(zmq.SUBSCRIBE, TOPIC_EVENT)
        self._sub.setsockopt(zmq.SUBSCRIBE, TOPIC_HEARTBEAT)
        self._sub.connect(f"tcp://{self.host}:{events_port(self.port, self.role)}")
        self._poller.register(self._sub, zmq.POLLIN)

    def _close_sub(self) -> None:
        self._poller.unregister(self._sub)
        self._sub.close(0)

    def _close(self) -> None:
        self._poller.unregister(self._monitor)
        self._dealer.disable_monitor()
        self._monitor.close(0)
        self._poller.unregister(self._dealer)
        self._dealer.close(0)
        self._close_sub()

    def _disconnected(self) -> bool:
        """Whether the monitor reported the broker's connection dropped (its queue read to the end)."""
        dropped = False
        while _readable(self._monitor):
            try:
                event = recv_monitor_message(self._monitor)
            except zmq.ZMQError:
                break
            dropped = dropped or event.get("event") == zmq.EVENT_DISCONNECTED
        return dropped

    def _hello(self, type_: str = "hello") -> Request:
        # The ping says the same as the hello, so a broker that restarted between two hellos
        # still lists this device with its name and role.
        return Request(type=type_, args={"role": self.role, "name": self.name, "counter": self.counter},
                       client=self.client_id)

    def _snapshot_request(self) -> Request:
        # The role too: under --insecure (or with an admin key) the broker learns from it that a public
        # screen must get the public view, also from a snapshot asked before its hello was heard.
        return Request(type="snapshot", args={"tickets": self.snapshot_tickets, "role": self.role},
                       client=self.client_id)

    def _run(self) -> None:
        # One poller for the thread's life, and ZMQ_EVENTS instead of poll(0) (a poller each time):
        # less work in every wake-up of every screen.
        self._poller = zmq.Poller()
        self._poller.register(self._wake_rx, zmq.POLLIN)
        self._open()
        pending: dict[str, tuple[Request, float, float]] = {}  # id -> (request, first sent, last sent)
        internal: set[str] = set()  # hello, ping, snapshot: answered here, not to the caller
        snap_id: str | None = None
        held: list[dict[str, Any]] = []  # events that arrived while the snapshot was on its way
        last_heard = time.monotonic()
        report_by: float | None = None  # a pair's broker dropped: the loss is reported then, unless one serves
        backoff = 0.25
        next_ping = 0.0
        internal.add(self._send(self._hello(), pending))
        wait_ms = 0
        try:
            while not self._stop.is_set():
                ready = dict(self._poller.poll(wait_ms))
                now = time.monotonic()
                if self._wake_rx in ready:
                    while _readable(self._wake_rx):
                        self._wake_rx.recv()
                if self._resubscribe.is_set():
                    self._resubscribe.clear()
                    self._close_sub()
                    self._open_sub()
                while not self._outbox.empty():
                    self._send(self._outbox.get(), pending)
                # The ZeroMQ descriptors are edge-triggered: always drain completely.
                standby = False
                while _readable(self._dealer):
                    try:
                        rep = decode_reply(self._dealer.recv())
                    except ProtocolError:
                        continue
                    if _standby(rep):
                        # Not the serving broker (any more): the request stays pending and goes, with the
                        # same id, to the next broker listed, which this link moves to now.
                        standby = standby or rep.re in pending
                        continue
                    report_by = None  # a broker that serves answered: the hall is there
                    if pending.pop(rep.re, None) is None:
                        continue  # a duplicate answer to a retried request
                    if rep.re == snap_id:
                        snap_id = None
                        if rep.ok and rep.result:
                            self.mirror.load(rep.result)
                            self.resyncs += 1
                            # The state now shown came from a live broker: from here on its silence is
                            # reported, even if it died before a heartbeat reached us (the screen would
                            # otherwise show a dead hall as live, for ever).
                            last_heard = now
                            if not self.alive:
                                self.alive = True
                                backoff = 0.25
                                self._notify(self.on_connection, True)
                            # Clone: events newer than the snapshot that arrived before it are
                            # applied now instead of being lost (which would force another resync).
                            for msg in held:
                                if self.mirror.apply(msg) == "applied":
                                    self._notify(self.on_event, msg)
                            self._notify(self.on_state, self.mirror)
                        elif not rep.ok and self.snapshot_tickets != "all":
                            # A counter the broker does not know (UNKNOWN_COUNTER): the whole state rather
                            # than none, so the screen can show why its clerk cannot sign in.
                            log.warning("snapshot of tickets %s refused (%s); asking for all", self.snapshot_tickets,
                                        (rep.error or {}).get("code"))
                            self.snapshot_tickets = "all"
                        held.clear()
                    if rep.re in internal:
                        internal.discard(rep.re)
                        if rep.type == "hello_reply" and not self.mirror.synced and snap_id is None:
                            # Don't wait for the first heartbeat: a snapshot taken before the
                            # subscription is live shows up as a sequence gap and is retaken.
                            snap_id = self._send(self._snapshot_request(), pending)
                            internal.add(snap_id)
                    else:
                        self._notify(self.on_reply, rep.re, rep)
                while _readable(self._sub):
                    try:
                        _topic, msg = decode_publication(self._sub.recv_multipart())
                    except ProtocolError:
                        continue
                    last_heard = now
                    report_by = None
                    if not self.alive:
                        self.alive = True
                        backoff = 0.25
                        self._notify(self.on_connection, True)
                    if snap_id is not None:
                        if msg.get("type") == "event":
                            held.append(msg)
                        continue
                    outcome = self.mirror.apply(msg)
                    if outcome == "applied":
                        self._notify(self.on_event, msg)
                        self._notify(self.on_state, self.mirror)
                    elif outcome == "resync" and snap_id is None:
                        # We subscribed first, so this snapshot is newer than anything queued.
                        snap_id = self._send(self._snapshot_request(), pending)
                        internal.add(snap_id)
                if now >= next_ping:
                    next_ping = now + PING_SECONDS  # presence: the broker marks silent devices offline
                    internal.add(self._send(self._hello("ping"), pending))
                for rid, (req, first, last) in list(pending.items()):
                    # A snapshot is big and costly to build: ask once and wait longer (a busy broker
                    # after a restart answers many), rather than resending and multiplying the work.
                    limit = SNAPSHOT_TIMEOUT if rid == snap_id else self.request_timeout
                    if now - first > limit:
                        del pending[rid]
                        if rid == snap_id:
                            snap_id = None
                            held.clear()
                        if rid in internal:
                            internal.discard(rid)
                        else:
                            self._notify(self.on_reply, rid, None)
                    elif now - last > RETRY_SECONDS and rid != snap_id:
                        self._dealer.send(encode_request(req))  # retry with the same id
                        pending[rid] = (req, first, now)
                move_on = False
                if self._disconnected() and self.alive:
                    if len(self.endpoints) == 1:
                        # The hall's only broker is gone: say so now (docs/standby.md "When a connection drops").
                        log.info("broker %s:%d dropped the connection", self.host, self.port)
                        last_heard = min(last_heard, now - DEAD_AFTER - 0.001)
                    elif report_by is None:
                        # One broker of a pair is gone, not the hall: the other may serve (or take over) at once.
                        log.info("broker %s:%d dropped the connection: trying the next one", self.host, self.port)
                        report_by = now + STANDBY_GRACE
                        move_on = True
                if standby and report_by is not None and now < report_by:
                    # Moved here because the other one dropped: this one is taking over (its requests are sent
                    # again every RETRY_SECONDS, answered once it serves). Going back would find nobody.
                    log.info("broker %s:%d stands by yet: waiting for its takeover", self.host, self.port)
                elif standby:
                    log.info("broker %s:%d is a standby now: trying the next one", self.host, self.port)
                    last_heard = min(last_heard, now - DEAD_AFTER - backoff - 0.001)
                if move_on:
                    self._close()
                    self._current = (self._current + 1) % len(self.endpoints)
                    self._open()
                    last_heard = now
                    internal.add(self._send(self._hello(), pending))
                    for rid, (req, first, _last) in list(pending.items()):
                        self._dealer.send(encode_request(req))
                        pending[rid] = (req, first, now)
                if report_by is not None and now >= report_by:
                    report_by = None
                    last_heard = min(last_heard, now - DEAD_AFTER - 0.001)
                if self.alive and now - last_heard > DEAD_AFTER:
                    self.alive = False
                    self.mirror.synced = False
                    snap_id = None
                    held.clear()
                    self._notify(self.on_connection, False)
                if not self.alive and now - last_heard > DEAD_AFTER + backoff:
                    # A fresh pair of sockets: the broker may have restarted on the same address, or the
                    # next one listed may have taken over (a standby pair); the backoff grows once a round.
                    self._close()
                    self._current = (self._current + 1) % len(self.endpoints)
                    self._open()
                    last_heard = now - DEAD_AFTER
                    if self._current == 0:
                        backoff = min(backoff * 2, 5.0)
                    internal.add(self._send(self._hello(), pending))
                    for rid, (req, first, _last) in list(pending.items()):
                        self._dealer.send(encode_request(req))
                        pending[rid] = (req, first, now)
                # Sleep until a message comes or the next thing falls due (a ping, a retry, a request's
                # time-out, the dead-broker check): an idle screen wakes a few times a second, not ten.
                due = [next_ping, last_heard + DEAD_AFTER + (0.0 if self.alive else backoff)]
                if report_by is not None:
                    due.append(report_by)
                for rid, (_req, first, last) in pending.items():
                    due.append(first + (SNAPSHOT_TIMEOUT if rid == snap_id else self.request_timeout))
                    if rid != snap_id:
                        due.append(last + RETRY_SECONDS)
                wait_ms = min(1000, max(1, math.ceil((min(due) - time.monotonic()) * 1000) + 1))
        finally:
            self._close()
            self._poller.unregister(self._wake_rx)
            self._wake_rx.close(0)

    def _notify(self, callback: Callable[..., None], *args: Any) -> None:
        """Run one of the screen's callbacks; an exception in it is logged, never allowed to end the link.

        A screen's callback that raised used to end the link's thread: the screen then froze on its last
        state, showing a live hall, without a word. Now the error is logged (with its traceback) and the
        link keeps its sockets, heartbeat and mirror going.
        """
        try:
            callback(*args)
        except Exception:
            self.callback_errors += 1
            log.exception("a %s callback of link %s raised; the link carries on", getattr(callback, "__name__", "?"),
                          self.client_id)

    def _send(self, req: Request, pending: dict[str, tuple[Request, float, float]]) -> str:
        now = time.monotonic()
        pending[req.id] = (req, now, now)
        self._dealer.send(encode_request(req))
        return req.id
