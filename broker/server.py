"""The broker: the hall engine behind ZeroMQ.

* ROUTER (``tcp://host:port``): requests from kiosks, counters, displays and the CLI;
  every request gets exactly one reply (docs/protocol.md).
* PUB (``tcp://host:port+1``): every state change as a sequenced event carrying the
  changed records (the zguide's Clone pattern), and a heartbeat every second, as the public
  sees it: no transfer note, no free-text reason (wall displays, kiosks, the web gateway);
* PUB (``tcp://host:port+2``): the same events with the same sequence numbers as the staff
  see them (counters, admins); with keys only staff keys complete its handshake.

With a keys directory the broker is a CurveZMQ server: only devices on the allow-list
connect, and each may do only what its role allows (a counter key only as its own
counter). Single-threaded: the order in which the ROUTER delivers commands is the
order of the hall.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import zmq
from queuehall.broker.alerts import AlertMonitor
from queuehall.broker.engine import COMMANDS, HALL_QUERIES, Hall
from queuehall.broker.keys import Device, broker_keys, list_devices
from queuehall.broker.lease import RENEW_SECONDS, TRY_SECONDS, Lease, LeaseLost
from queuehall.broker.model import ACTIVE, NO_SHOW, Event
from queuehall.broker.probe import BrokerProbe

from queuehall.commands import COMMANDS as SCHEMA
from queuehall.commands import Param, check_args, commands_for
from queuehall.errors import HallError
from queuehall.guesses import CODE_COMMANDS, WRONG_CODE_ERRORS, WrongCodes
from queuehall.protocol import (
    MAX_MESSAGE_BYTES,
    ROLES,
    STAFF_DOMAIN,
    STAFF_ROLES,
    TOPIC_EVENT,
    TOPIC_HEARTBEAT,
    ProtocolError,
    Request,
    decode_request,
    encode_publication,
    encode_reply,
    error_reply,
    ok_reply,
    preencoded,
    request_id_of,
)

log = logging.getLogger("queuehall.broker")

HEARTBEAT_SECONDS = 1.0
# Just after a (re)start the heartbeat comes ten times as often: it carries the new epoch, and the
# sooner each screen's reconnected SUB socket hears one, the sooner it asks for its snapshot.
STARTUP_HEARTBEAT_SECONDS = 0.1
STARTUP_SECONDS = 3.0
PRINTER_EVENTS = frozenset({"printer_fault", "printer_fault_cleared", "reprint_requested", "ticket_reprinted"})
PRESENCE_TIMEOUT = 5.0  # a device not heard from for this long is offline
PRESENCE_FORGET = 3600.0  # ... and one offline for this long leaves the presence table
MAX_DEVICES = 512  # presence entries at most: past it the one heard from least recently goes
SNAPSHOT_REUSE_SECONDS = 1.0  # a snapshot serves every asker of the same state for this long
GROUP_MAX = 256  # requests committed together at most (one transaction, one fsync)
REPORT_PREPARE_DAYS = 7  # when a business day ends, the report facts of the days before it (docs/reports.md)
EVENTS_PAGE = 1000  # journaled events one ``events`` request returns at most
# Derived from the one command schema (queuehall/commands.py: names, parameters, roles): the broker's own
# requests (any role), the questions it answers from the hall without changing it and who may ask them, the
# arguments of both, and the commands each role may send.
BROKER_COMMANDS = tuple(name for name, c in SCHEMA.items() if c.kind == "link")
BROKER_PARAMS: dict[str, tuple[Param, ...]] = {name: c.params for name, c in SCHEMA.items()
                                               if c.kind in ("link", "query") and name != "snapshot"}
QUERIES: dict[str, frozenset[str]] = {name: c.roles for name, c in SCHEMA.items() if c.kind == "query"}
# The web gateway (docs/web.md) checks its API tokens' scopes itself: remote tickets only (see _authorise) and
# their check-in, and the counter actions of integration boxes, for any counter. A counter's own screen is its
# evaluator (评价器), as is a hardware evaluator box with a display key of that counter (role display); the
# clerk's own terminal (role counter) may not rate its own visits.
ROLE_COMMANDS: dict[str, frozenset[str]] = {
    role: frozenset(name for name in commands_for(role) if name in COMMANDS) for role in ROLES}
_SNAPSHOT_ROLE = (Param("role", str, False),)


# Checks run on every publication before it is sent, with the broker, the hall time and the service summaries and
# counter records it rebuilt for what the engine marked changed. A hall runs none; the tests register one that
# finds records changed without the engine marking them (tests/conftest.py). An exception here is only logged.
PublicationCheck = Callable[["Broker", datetime, dict[str, Any], dict[str, Any]], None]
PUBLICATION_CHECKS: list[PublicationCheck] = []


class _AllowList:
    """ZAP credentials provider: a key is allowed while its file is in the allow-list."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.devices: dict[bytes, Device] = {}
        self._stamp: tuple[int, int] | None = None
        self.reload()

    def reload(self) -> None:
        """Re-read the allow-list when the devices directory changed (adding or removing a file
        changes its mtime; the count catches file systems with coarse timestamps)."""
        d = self.directory / "devices"
        stamp = (d.stat().st_mtime_ns, len(list(d.glob("*.key")))) if d.exists() else (0, 0)
        if stamp != self._stamp:
            self.devices = {dev.public_key: dev for dev in list_devices(self.directory)}
            self._stamp = stamp

    def callback(self, domain: str, key: bytes) -> bool:
        """ZAP: is this client key allowed? pyzmq passes the key Z85-encoded (40 bytes); a raw
        32-byte key is encoded here, so either form works."""
        import zmq.utils.z85

        self.reload()
        z85 = zmq.utils.z85.encode(key) if len(key) == 32 else bytes(key)
        dev = self.devices.get(z85)
        if dev is None:
            log.warning("refused unknown key %s…", z85[:8].decode("ascii", "replace"))
            return False
        if domain == STAFF_DOMAIN and dev.role not in STAFF_ROLES:
            log.warning("refused %s (role %s) on the staff event stream", dev.name, dev.role)
            return False
        return True


class Broker:
    """Serves one :class:`Hall` on a ROUTER and a PUB socket."""


    def __init__(self, hall: Hall, *, host: str = "127.0.0.1", port: int = 5555,
                 keys_dir: str | Path | None = None, context: zmq.Context | None = None,
                 lease: Lease | None = None, sockets: BrokerSockets | None = None) -> None:
        self.hall = hall
        self.host = host
        self.port = port
        self.keys_dir = Path(keys_dir) if keys_dir else None
        self.ctx = context or zmq.Context.instance()
        self.epoch = uuid.uuid4().hex[:12]
        self.seq = 0
        # Presence, by device key name (with keys) or client id (without), least recently heard first.
        self.devices: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._presence_changed: set[str] = set()  # published together at the next heartbeat
        self._presence_published: set[str] = set()  # the entries the subscribers have been told of
        self._pending: list[Event] = []
        self._last_summaries = self._summaries()
        self._last_counters = self._counter_views()
        hall.dirty_services.clear()
        hall.dirty_counters.clear()
        self._auth: Any = None
        self._allow: _AllowList | None = None
        self.router: zmq.Socket | None = None
        self.pub: zmq.Socket | None = None
        self.staff_pub: zmq.Socket | None = None
        self.stop_event = threading.Event()
        # One of a primary/standby pair (docs/standby.md): serve only while holding the hall's lease.
        self.lease = lease
        self._sockets = sockets
        self.stepped_down = False  # the lease was lost: serve_forever returns, every request is refused
        self._next_renewal = 0.0
        self.largest_group = 0  # most commands committed in one transaction so far
        # Wrong booking codes per device in the last minute (broker/appointments.py WrongCodes).
        self.wrong_codes = WrongCodes(hall.config.appointments.wrong_codes_per_minute)
        self._snapshot_cache: dict[str, Any] = {}  # see _encoded_snapshot
        self._day = hall.hours.business_day(hall.clock.now())
        # The calendar's state as last published; None: not yet (the first heartbeat publishes a warning).
        self._calendar: dict[str, Any] | None = None
        self._calendar_sent: dict[str, Any] | None = None
        self._warn_calendar(hall.hours.calendar_status(self._day))  # at start, in the log
        self.report_prepare: threading.Thread | None = None  # the last nightly preparation (tests join it)
        # Why the database cannot be written now (None: it can), and whether the hall must be reloaded
        # from it once it can (a group commit failed while the memory was already ahead of it).
        self.storage_down: HallError | None = None
        self._rebuild_when_writable = False
        hall.listeners.append(self._pending.append)
        self.alerts = AlertMonitor(hall.config.alerts,
                                   {k: v["details"] for k, v in hall.active_alerts().items()})
        # Set before serving to have the broker report its work (benchmarks; see BrokerProbe).
        self.probe: BrokerProbe | None = None

    # ------------------------------------------------------------------ sockets

    def bind(self) -> None:
        """Bind the three sockets (and start the ZAP authenticator when keys are used), or take over
        those a standby bound (:func:`bind_sockets`), which then outlive this broker."""
        socks = self._sockets if self._sockets is not None else bind_sockets(
            self.ctx, self.host, self.port, self.keys_dir)
        self.router, self.pub, self.staff_pub = socks.router, socks.pub, socks.staff_pub
        self._auth, self._allow = socks.auth, socks.allow
        log.info("broker %s serving on %s:%d (events %d), %s", self.epoch, self.host, self.port,
                 self.port + 1, "CurveZMQ" if self.keys_dir else "WITHOUT encryption")

    def close(self) -> None:
        if self.report_prepare is not None:  # its connection must not outlive the broker's database
            self.report_prepare.join(30)
        if self._sockets is not None:
            return  # a standby's sockets: they answer BROKER_STANDBY once this broker stepped down
        for s in (self.router, self.pub, self.staff_pub):
            if s is not None:
                s.close(0)
        if self._auth is not None:
            self._auth.stop()
            self._auth = None

    def serve_forever(self) -> None:
        """Run until :attr:`stop_event` is set (SIGTERM handler, tests)."""
        if self.router is None:
            self.bind()
        assert self.router is not None
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        started = next_beat = time.monotonic()
        try:
            while not self.stop_event.is_set():
                if not self._holds_lease():
                    break
                timeout = max(0.0, next_beat - time.monotonic())
                if poller.poll(round(min(timeout, 0.2) * 1000)):
                    # Drain what is queued (commands are handled strictly in arrival order), but
                    # stop for the heartbeat: a flood of requests must not make devices think us dead.
                    while time.monotonic() < next_beat:
                        batch: list[Any] = []
                        while len(batch) < GROUP_MAX:
                            try:
                                batch.append(self.router.recv_multipart(zmq.NOBLOCK, copy=False))
                            except zmq.Again:
                                break
                        if not batch:
                            break
                        if not self._holds_lease():  # paused past the lease: answer nothing from memory
                            for frames in batch:
                                if len(frames) == 2:
                                    self.router.send_multipart([frames[0].bytes, standby_reply(frames[1].bytes)])
                            break
                        self._on_batch(batch)
                        if self.stepped_down:
                            break
                if time.monotonic() >= next_beat:
                    if not self._holds_lease():  # woken from a pause: no heartbeat, no write of a lost lease
                        break
                    try:
                        self._tick()
                    except Exception:  # logged; the next beat tries again
                        log.exception("heartbeat failed")
                    early = time.monotonic() - started < STARTUP_SECONDS
                    interval = min(STARTUP_HEARTBEAT_SECONDS, HEARTBEAT_SECONDS) if early else HEARTBEAT_SECONDS
                    next_beat = time.monotonic() + interval
        finally:
            self.close()

    # ------------------------------------------------------------------ requests

    def _on_frames(self, frames: list[zmq.Frame]) -> None:
        self._on_batch([frames])

    def _on_batch(self, batch: list[list[zmq.Frame]]) -> None:
        """Handle the requests that were waiting, commit them as one group, then reply and publish.

        Group commit: one transaction (one fsync) for all the commands already queued, and
        no reply or event leaves before it is durable. If the database refuses the group,
        every state-changing command in it is answered STORAGE and the hall is rebuilt
        from the database (a new epoch makes every screen resynchronise). A snapshot
        request closes the group first: a snapshot must never show what was not yet
        published, or a mirror would apply those events twice.
        """
        assert self.router is not None
        probe = self.probe
        if probe is not None:
            probe.batch_started(time.monotonic())
        self._check_storage()
        self._close_days()  # published before any command of the new day is answered
        out: list[tuple[bytes, Any, bool]] = []
        self._begin_group()
        for frames in batch:
            if len(frames) != 2:
                log.warning("dropped a message with %d frames", len(frames))
                continue
            ident, body = frames[0].bytes, frames[1]
            if out and _closes_group(body.bytes):
                self._end_group(out)
                out = []
                self._begin_group()
            user = body.get("User-Id") if self.keys_dir is not None else None
            user = None if user is None else str(user)  # a str for "User-Id" (Frame.get is typed str | int)
            if probe is None:
                reply = self.handle(body.bytes, user)
            else:
                t0 = time.monotonic()
                reply = self.handle(body.bytes, user)
                probe.request_handled(time.monotonic() - t0)
            out.append((ident, reply, reply.type.removesuffix("_reply") in COMMANDS))
        self._end_group(out)
        if probe is not None:
            probe.batch_done(time.monotonic())

    def _holds_lease(self) -> bool:
        """Whether this broker may serve now: always without a lease; with one, while the lease is valid
        on the local clock, renewed every RENEW_SECONDS (a renewal that finds the lease taken over, or a
        lease run out without an answer from the database, makes the broker step down)."""
        lease = self.lease
        if lease is None:
            return True
        if self.stepped_down:
            return False
        now = time.monotonic()
        if now >= self._next_renewal or not lease.valid():
            renewed = lease.renew()
            self._next_renewal = now + RENEW_SECONDS
            if renewed is False or not lease.valid():
                log.critical("the lease is %s: stepping down", "taken over" if renewed is False else "out")
                self._step_down()
                return False
        return True

    def _step_down(self) -> None:
        """Stop serving: nothing more is written or answered from memory (serve_forever returns)."""
        self.stepped_down = True
        if self.lease is not None:
            self.lease.lose()
        self._pending.clear()
        group = getattr(self.hall.journal, "_group", None)
        if group is not None:
            self.hall.journal._group = None  # type: ignore[attr-defined]  # a Store: what it collected is void

    def _begin_group(self) -> None:
        if hasattr(self.hall.journal, "begin_group"):
            self.hall.journal.begin_group()

    def _end_group(self, out: list[tuple[bytes, Any, bool]]) -> None:
        """Make the group durable, then send its replies, then publish its events."""
        assert self.router is not None
        journal = self.hall.journal
        if hasattr(journal, "flush_group"):
            try:
                t0 = time.monotonic()
                written = journal.flush_group()
                if self.probe is not None:
                    self.probe.group_committed(time.monotonic() - t0, written)
                self.largest_group = max(self.largest_group, written)
            except Exception as exc:
                if self.lease is not None and (isinstance(exc, LeaseLost) or self.lease.renew() is False):
                    # Fenced off: none of it is stored, and the clients try the serving broker with the same ids.
                    log.critical("lost the lease: %d commands not stored; stepping down", len(out))
                    self._step_down()
                    for ident, rep, _changed in out:
                        self.router.send_multipart([ident, encode_reply(error_reply(
                            rep.type.removesuffix("_reply"), rep.re, HallError("BROKER_STANDBY")))])
                    return
                failed = HallError("STORAGE", detail=str(exc)[:200], detail_zh=getattr(exc, "zh", str(exc)[:200]))
                out = [(ident, error_reply(rep.type.removesuffix("_reply"), rep.re, failed)
                        if changed and rep.ok else rep, changed) for ident, rep, changed in out]
                if self._storage_unwritable() is None:
                    log.critical("the database refused %d commands; rebuilding the hall from it", len(out))
                    self._rebuild()
                else:  # reading it now could be SIGBUS: rebuild once it is writable again
                    log.critical("the database refused %d commands: %s", len(out), exc)
                    self._rebuild_when_writable = True
                    self._pending.clear()
                    self._check_storage()
        for ident, reply, _changed in out:
            self.router.send_multipart([ident, encode_reply(reply)])
        try:
            self._flush()
        except Exception:  # a bug while publishing must not stop the hall...
            log.exception("could not publish the events of %d requests", len(out))
            # ...but the mirrors may now be wrong: a new epoch makes every one of them resync.
            self._pending.clear()
            self.epoch = uuid.uuid4().hex[:12]
        self._check_alerts()

    def _check_alerts(self) -> None:
        """Run the alert rules (broker/alerts.py) on the hall as it is now; record and publish what changed
        (``alert_raised``/``alert_cleared``, journaled by the engine's ``alert`` command). After every
        group of commands and every heartbeat, so an alert follows its condition within a beat."""
        if not self.hall.config.alerts.enabled or self.stepped_down:
            return
        try:
            raised, cleared = self.alerts.check(self.hall, self.devices, self.hall.clock.now())
            if not raised and not cleared:
                return
            self.hall.record_alerts(raised, cleared)
            self._flush()
        except Exception:  # the database refused, or a rule failed: start again from what the hall recorded
            log.exception("could not record alerts")
            self.alerts.active = {k: v["details"] for k, v in self.hall.active_alerts().items()}
            self._pending.clear()
    def _storage_unwritable(self) -> Any:
        check = getattr(self.hall.journal, "unwritable", None)
        return check() if check is not None else None

    def _check_storage(self) -> None:
        """Before touching the database: can it be written? While it cannot, every command that
        changes the hall is refused with STORAGE (hello, ping and snapshots are served from memory)
        and nothing reads or writes it, since SQLite's WAL index could then cost a SIGBUS (see
        broker/storage.py). Said once in the log when it happens and once when it is over."""
        failure = self._storage_unwritable()
        if failure is not None:
            if self.storage_down is None:
                log.critical("%s; refusing commands with STORAGE until it can be written again", failure)
            self.storage_down = HallError("STORAGE", detail=failure.en, detail_zh=failure.zh)
            return
        if self.storage_down is not None:
            log.warning("the database can be written again; accepting commands")
            self.storage_down = None
        if self._rebuild_when_writable:
            self._rebuild_when_writable = False
            self._rebuild()

    def _rebuild(self) -> None:
        """Replace the in-memory hall with the one the database holds (after a failed group commit)."""
        from queuehall.broker.storage import load_hall

        old = self.hall
        self.hall = load_hall(old.config, old.clock, old.journal,  # type: ignore[arg-type]  # a Store
                              contact_key=old.contact_key)
        self.hall.listeners = old.listeners
        self._pending.clear()
        self._last_counters = self._counter_views()  # the screens resync from snapshots of the new epoch
        self._last_summaries = self._summaries()
        self.epoch = uuid.uuid4().hex[:12]

    def handle(self, frame: bytes, user_key: str | None = None) -> Any:
        """One request frame in, one reply out (never raises)."""
        try:
            req = decode_request(frame)
        except ProtocolError as err:
            log.warning("bad request: %s", err)
            return error_reply("", request_id_of(frame), err)
        except Exception as exc:  # whatever a frame holds, the hall keeps running
            log.exception("undecodable request")
            return error_reply("", "", ProtocolError("BAD_REQUEST", type(exc).__name__))
        device: str | None = None
        braked = False
        try:
            if self.stepped_down:
                raise HallError("BROKER_STANDBY")
            role, counter, client, device = self._identify(req, user_key)
            if req.type in BROKER_PARAMS:
                req.args = check_args(BROKER_PARAMS[req.type], req.args)
            self._seen(device, client, role, counter, req)
            staff = self._staff_view(role, device)
            if req.type == "snapshot" and "role" in req.args:  # a Link says what it is: a public one sees less
                said = check_args(_SNAPSHOT_ROLE, req.args).get("role")
                staff = staff and (said is None or said in STAFF_ROLES)
            # The web gateway stands for every citizen on the internet: it brakes each one's address itself
            # (queuehall/guesses.py), so one guesser there does not stop everyone's booking pages.
            braked = req.type in CODE_COMMANDS and role != "web"
            if braked and (client, req.id) not in self.hall.requests:  # a retry is no guess
                wait = self.wrong_codes.wait_seconds(device, self.hall.clock.now())
                if wait:
                    raise HallError("BOOKING_CODE_LIMIT", retry_after=wait,
                                    per_minute=self.wrong_codes.per_minute)
            if req.type in BROKER_COMMANDS:
                return ok_reply(req.type, req.id, self._broker_command(req, client, staff))
            if req.type in QUERIES:
                if role not in QUERIES[req.type]:
                    log.warning("refused %s from %s (role %s)", req.type, client, role)
                    raise HallError("FORBIDDEN", detail=f"role {role} may not {req.type}")
                answer = self._query(req)
                return ok_reply(req.type, req.id, answer if staff else _public_result(answer))
            if req.type not in COMMANDS:
                raise HallError("UNKNOWN_COMMAND", command=req.type)
            self._authorise(req, role, counter, client)
            if self.storage_down is not None:
                raise self.storage_down
            result = self.hall.execute(req.type, req.args, client=client, request_id=req.id)
            return ok_reply(req.type, req.id, result if staff else _public_result(result))
        except HallError as err:
            if device is not None and braked and err.code in WRONG_CODE_ERRORS:
                self.wrong_codes.wrong(device, self.hall.clock.now())
            return error_reply(req.type, req.id, err)
        except Exception as exc:  # a bug must not take the hall down: answer and log it
            log.exception("internal error on %s", req.type)
            return error_reply(req.type, req.id, HallError("UNAVAILABLE", detail=type(exc).__name__))

    def _identify(self, req: Request, user_key: str | None) -> tuple[str, int | None, str, str]:
        """The caller's role, counter, client id and device (its presence entry): with keys they come
        from the allow-list, and the device is the key's name, however many client ids it uses."""
        client = req.client or "anonymous"
        if self.keys_dir is None:
            return "admin", None, client, client
        assert self._allow is not None
        # Re-read the allow-list if it changed (a stat and a listing): a device removed while connected is
        # refused from its next request on, not only when it reconnects.
        self._allow.reload()
        dev = self._allow.devices.get(user_key.encode() if user_key else b"")
        if dev is None:
            raise HallError("FORBIDDEN", detail="unknown key")
        # Bind the client id to the key so one device cannot replay another's request ids.
        return dev.role, dev.counter, f"{dev.name}/{client}"[:64], dev.name

    def _authorise(self, req: Request, role: str, counter: int | None, client: str) -> None:
        if req.type not in ROLE_COMMANDS.get(role, frozenset()):
            log.warning("refused %s from %s (role %s)", req.type, client, role)
            raise HallError("FORBIDDEN", detail=f"role {role} may not {req.type}")
        if req.type == "take_ticket" and role in ("web", "kiosk") and (req.args.get("channel") == "remote") != (
                role == "web"):
            raise HallError("FORBIDDEN", detail="the web gateway takes remote tickets only"
                            if role == "web" else "a kiosk takes kiosk tickets only")
        if role == "kiosk" and req.type == "reprint_ticket" and (
                req.args.get("counter") is not None or req.args.get("kiosk") not in (None, client)):
            raise HallError("FORBIDDEN", detail="a kiosk may order reprints only for itself")
        if req.type == "rate" and role != "admin":
            self._authorise_rating(req, role, counter)
        if role == "counter":
            asked = req.args.get("counter")
            if req.type in ("cancel_ticket", "reinstate") and asked is None:
                return
            if not isinstance(asked, int) or isinstance(asked, bool):
                return  # not a counter number at all: the engine refuses it (BAD_REQUEST)
            if asked != counter:
                log.warning("refused: counter key %s (counter %s) acting as counter %s", client, counter, asked)
                raise HallError("FORBIDDEN", detail=f"this key belongs to counter {counter}")

    @staticmethod
    def _authorise_rating(req: Request, role: str, counter: int | None) -> None:
        """Who may rate what (docs/evaluation.md): a counter's screen or evaluator box (role display with a
        counter) only that counter's visits, by its screen or box; the web gateway only from the ticket's
        phone page, naming the ticket."""
        channel = req.args.get("channel")
        if role == "display":
            if counter is None or str(req.args.get("counter")) != str(counter):
                raise HallError("FORBIDDEN", detail="a screen rates the visits of its own counter only")
            if channel not in ("counter_screen", "evaluator_box"):
                raise HallError("FORBIDDEN", detail="a counter's screen rates as counter_screen or evaluator_box")
        elif role == "web" and (channel != "phone" or req.args.get("ticket") is None):
            raise HallError("FORBIDDEN", detail="the web gateway rates a ticket from its phone page only")

    def _staff_view(self, role: str, device: str) -> bool:
        """Whether this caller sees notes and free-text reasons: a staff key (counter, admin), unless
        an admin key (or anyone under --insecure) said in its hello that it is a public screen."""
        if role not in STAFF_ROLES:
            return False
        said = self.devices.get(device, {}).get("role") if role == "admin" else None
        return said is None or said in STAFF_ROLES

    def _broker_command(self, req: Request, client: str, staff: bool = True) -> Any:
        if req.type == "snapshot":
            return self._encoded_snapshot(self._ticket_scope(req.args.get("tickets", "all")), staff)
        return {"epoch": self.epoch, "seq": self.seq, "client": client}

    def _query(self, req: Request) -> dict[str, Any]:
        """One of :data:`QUERIES` (the caller's role was checked).

        ``ticket_by_token {token}``: the public view of today's ticket with that page token (open
        tickets from memory, ended ones from the database), or UNKNOWN_TOKEN. A ticket of an earlier
        day answers only while it is still open. The token itself is never in the answer."""
        if req.type == "events":
            return self.journal_events(req.args.get("after"), req.args.get("limit", EVENTS_PAGE))
        if req.type == "cases":
            return {"cases": self.hall.open_cases()}
        if req.type == "alerts":
            return {"alerts": [dict(v, key=k) for k, v in self.hall.active_alerts().items()]}
        if req.type in HALL_QUERIES:  # slots, bookings: the hall answers from its state
            return self.hall.query(req.type, req.args)
        if req.type == "today":
            return self.today_figures()
        token = req.args.get("token")
        if not isinstance(token, str) or not 16 <= len(token) <= 64:
            raise HallError("UNKNOWN_TOKEN")
        hall = self.hall
        t = hall.ticket_by_token(token)
        if t is not None:
            return {"ticket": hall.ticket_view(t), "epoch": self.epoch, "seq": self.seq}
        find = getattr(hall.journal, "ticket_by_token", None)
        found = find(token) if find is not None else None
        today = hall.hours.business_day(hall.clock.now())
        if found is None or found[0].business_day != today or found[0].queue_service not in hall.services:
            raise HallError("UNKNOWN_TOKEN")
        stored, visit = found
        return {"ticket": hall.ticket_view(stored, visit=visit), "epoch": self.epoch, "seq": self.seq}

    def today_figures(self) -> dict[str, Any]:
        """``today``: the business day's completion and satisfaction so far from the database
        (:meth:`~queuehall.broker.storage.Store.day_figures`); ``{"business_day", "available": false}`` when
        the broker keeps no database."""
        hall = self.hall
        day = hall.hours.business_day(hall.clock.now())
        figures = getattr(hall.journal, "day_figures", None)
        if figures is None:
            return {"business_day": day.isoformat(), "available": False}
        promised = [s.code for s in hall.config.services if s.promised_days]
        return {**figures(day, promised), "available": True}

    def journal_events(self, after: Any, limit: Any = EVENTS_PAGE) -> dict[str, Any]:
        """``events``: the journaled events after ``journal_seq`` ``after``, oldest first, at most ``limit``
        (0 asks only for ``last_seq``), in the form they were published; ``last_seq`` is the newest
        event's number. A gateway that missed publications (it was down, or lost some) fills them in from
        here (docs/web.md, webhooks). ``journal`` is false when the broker keeps no journal (no database):
        then nothing can be filled in. Numbers the database no longer has (purged) are simply absent."""
        for name, value in (("after", after), ("limit", limit)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise HallError("BAD_REQUEST", argument=name, detail=f"{name} must be a whole number >= 0",
                                detail_zh=f"参数 {name} 应为不小于 0 的整数")
        store = self.hall.journal
        if not hasattr(store, "events_since"):
            return {"events": [], "last_seq": self.hall.last_event_seq, "journal": False}
        rows = store.events_since(after, limit=min(limit, EVENTS_PAGE)) if limit else []
        events = [dict(r["data"], type=r["type"], at=r["at"].replace("+00:00", "Z"), journal_seq=r["seq"],
                       counter=r["counter"], clerk=r["clerk"], service=r["service"]) for r in rows]
        return {"events": events, "last_seq": self.hall.last_event_seq, "journal": True}

    def _ticket_scope(self, asked: Any) -> str | int:
        """The ``tickets`` argument of a snapshot: ``"all"``, ``"none"``, or ``{"counter": N}`` (the
        tickets counter N may see); raises BAD_REQUEST for anything else."""
        if asked in ("all", "none"):
            return str(asked)
        n = asked.get("counter") if isinstance(asked, dict) else None
        if isinstance(n, bool) or not isinstance(n, int):
            raise HallError("BAD_REQUEST", argument="tickets",
                            detail='tickets must be "all", "none" or {"counter": N}',
                            detail_zh='参数 tickets 应为 "all"、"none" 或 {"counter": N}')
        if n not in self.hall.counter_config:
            raise HallError("UNKNOWN_COUNTER", counter=n)
        return n

    def snapshot(self, scope: str | int = "all", staff: bool = True) -> dict[str, Any]:
        """The whole state in the mirror's form, with the sequence number it is current to.

        ``scope`` limits ``tickets``: ``"none"`` (a kiosk shows no ticket), or a counter's number:
        the tickets that counter may see (of the services it serves, addressed to it or at it).
        A scoped mirror still gets every ticket's changes from the events; it only starts smaller.
        """
        state, tickets = self._snapshot_parts()
        if not staff:
            state, tickets = _public_parts(state, tickets)
        state["tickets"] = {k: tickets[k] for k in self._scope_keys(_TicketIndex(tickets), scope)}
        return {"epoch": self.epoch, "seq": self.seq, "state": state}

    def _snapshot_parts(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The snapshot's state without its tickets, and every ticket view by id."""
        started = time.monotonic()
        try:
            return self._build_snapshot_parts()
        finally:
            if self.probe is not None:
                self.probe.snapshot_built(started, time.monotonic() - started)

    def _build_snapshot_parts(self) -> tuple[dict[str, Any], dict[str, Any]]:
        snap = self.hall.snapshot()
        tickets: dict[str, Any] = {}
        for s in snap["services"]:
            for t in s.pop("tickets"):
                tickets[str(t["id"])] = t
        for c in snap["counters"]:
            if c["ticket"]:
                tickets[str(c["ticket"]["id"])] = c["ticket"]
        for t in snap.pop("no_shows"):
            tickets[str(t["id"])] = t
        # _last_summaries stays as published: a snapshot must not hide a change from the subscribers.
        return {
            **{k: snap[k] for k in ("now", "business_day", "timezone", "calendar", "hall", "departments",
                                    "priority_classes", "pause_reasons", "printers")},
            # In the form the events carry, so a mirror's list reads the same after either.
            "recent_calls": [_event_payload(ev) for ev in self.hall.recent_calls],
            "service_order": [s["code"] for s in snap["services"]],
            "services": {s["code"]: s for s in snap["services"]},
            "counters": {str(c["number"]): c for c in snap["counters"]},
            "devices": _public({"devices": self.devices})["devices"],
        }, tickets

    def _encoded_snapshot(self, scope: str | int, staff: bool = True) -> Any:
        """:meth:`snapshot` encoded for the wire. Many screens ask at once after a restart: the state
        is built and encoded once per (epoch, seq) and view (staff or public), each ticket too, and
        reused for a second; a scope then only picks ticket encodings (2-8 ms to encode 1,000
        tickets, times every asker)."""
        if self.probe is not None:
            self.probe.snapshot_answered()
        now = time.monotonic()
        cache = self._snapshot_cache
        if cache.get("at") != (self.epoch, self.seq) or now - cache["t"] > SNAPSHOT_REUSE_SECONDS:
            parts = self._snapshot_parts()
            cache.clear()
            cache.update(at=(self.epoch, self.seq), t=now, parts=parts, index=_TicketIndex(parts[1]), views={})
        view = cache["views"].get(staff)
        if view is None:
            state, tickets = cache["parts"] if staff else _public_parts(*cache["parts"])
            view = cache["views"][staff] = {"state": {k: preencoded(v) for k, v in state.items()},
                                            "tickets": {k: preencoded(t) for k, t in tickets.items()}, "scoped": {}}
        chosen = self._scope_keys(cache["index"], scope)
        # Keyed by the tickets chosen: counters serving the same services share one encoding.
        out = view["scoped"].get(chosen)
        if out is None:
            tickets = view["tickets"]
            out = view["scoped"][chosen] = preencoded({"epoch": self.epoch, "seq": self.seq, "state": {
                **view["state"], "tickets": {k: tickets[k] for k in chosen}}})
        return out

    def _scope_keys(self, index: _TicketIndex, scope: str | int) -> tuple[str, ...]:
        """The ids of the tickets a snapshot of ``scope`` brings: all, none, or those counter N may see
        (of a service it serves and addressed to no counter, addressed to it, or at it), in id order."""
        if scope == "all":
            return index.all
        if scope == "none" or isinstance(scope, str):
            return ()
        keys = set(index.addressed.get(scope, ())) | set(index.at_counter.get(scope, ()))
        for code in self.hall.counter_config[scope].services:
            keys.update(index.unaddressed.get(code, ()))
        if 10 * len(keys) >= 9 * len(index.all):
            # Nearly everything (a counter serving every service): all of them, in the encoding the
            # other such counters share, rather than a nearly identical one each. A superset is allowed.
            return index.all
        return tuple(sorted(keys, key=int))

    # ------------------------------------------------------------------ presence and publication

    def _seen(self, device: str, client: str, role: str, counter: int | None, req: Request) -> None:
        """Presence: a device is a caller that says ``hello`` or ``ping`` (the Link does both);
        one-shot callers (the CLI, scripts) are not listed. Any request keeps a device online.

        One entry per device: per key with CurveZMQ (a kiosk restarting with a new client id is
        the same kiosk), per client id without. The table is bounded: an entry offline for
        :data:`PRESENCE_FORGET` is forgotten, and past :data:`MAX_DEVICES` entries the one heard
        from least recently goes (a flood of made-up client ids cannot grow it, or the snapshot)."""
        now = time.monotonic()
        dev = self.devices.get(device)
        if req.type in ("hello", "ping"):
            args = req.args  # checked: BROKER_PARAMS
            said_role = args.get("role") if args.get("role") in ROLES else None
            record = {
                # Only an admin key (or --insecure, where everyone is admin) may say what it is.
                "role": (said_role or role) if role == "admin" else role,
                "counter": counter if counter is not None else args.get("counter"),
                "name": (args.get("name") or (dev or {}).get("name") or device)[:64],
                "online": True,
                "client": client,  # the client id it said so with (a kiosk's printer alerts are keyed by it)
            }
            if dev is None or {k: dev.get(k) for k in record} != record:
                self.devices[device] = dev = record
                self._presence_changed.add(device)
                while len(self.devices) > MAX_DEVICES:
                    gone, _ = self.devices.popitem(last=False)
                    self._presence_changed.add(gone)
        elif dev is None:
            return
        elif not dev["online"]:
            dev["online"] = True
            self._presence_changed.add(device)
        dev["_seen"] = now
        self.devices.move_to_end(device)

    def _publish(self, event: dict[str, Any], *, set_: dict[str, Any] | None = None,
                 delete: dict[str, list[str]] | None = None) -> None:
        assert self.pub is not None
        self.seq += 1
        body = {"type": "event", "epoch": self.epoch, "seq": self.seq, "event": event,
                "set": _public(set_ or {}), "del": delete or {}}
        frames = encode_publication(TOPIC_EVENT, body)
        assert self.staff_pub is not None
        self.staff_pub.send_multipart(frames)
        public = _public_body(body)  # the same event, the same seq, without what the public must not see
        self.pub.send_multipart(frames if public is body else encode_publication(TOPIC_EVENT, public))

    def _flush(self) -> None:
        """Publish the engine events of the last command with the records they changed."""
        if self.probe is None:
            self._publish_pending()
            return
        t0 = time.monotonic()
        events = list(self._pending)
        self._publish_pending()
        self.probe.events_published(time.monotonic() - t0, events)

    def _publish_pending(self) -> None:
        if not self._pending:
            return
        events, self._pending[:] = list(self._pending), []
        hall = self.hall
        now = hall.clock.now()
        # Only what the batch touched is rebuilt (the engine marks it: cancelling a called ticket
        # frees its counter although the event names no counter), and only what differs is sent.
        dirty_services, dirty_counters = self._take_dirty()
        summaries = {code: hall.service_summary(hall.services[code], now)
                     for code in dirty_services if code in hall.services}
        counters = {str(n): hall.counter_public(n) for n in dirty_counters if n in hall.counter_config}
        for check in PUBLICATION_CHECKS:
            check(self, now, summaries, counters)
        changed = {k: v for k, v in counters.items() if self._last_counters.get(k) != v}
        self._last_counters.update(counters)
        # Services and counters are sent once per batch: every record in a publication is already
        # the state after the whole batch, so later events need not repeat it.
        services = {k: v for k, v in summaries.items() if self._last_summaries.get(k) != v}
        for i, ev in enumerate(events):
            set_: dict[str, Any] = {"services": services if i == 0 else {},
                                    "counters": dict(changed) if i == 0 else {}, "tickets": {}}
            delete: dict[str, list[str]] = {"tickets": []}
            if ev.type == "day_closed":  # the closed day's no-shows leave the screens
                delete["tickets"].extend(ev.data.get("no_shows", []))
            if ev.ticket_id is not None:
                t = self.hall.tickets.get(ev.ticket_id)
                if t is not None and (t.status in ACTIVE or t.status == NO_SHOW):
                    set_["tickets"][str(t.id)] = self.hall.ticket_view(t)
                else:
                    delete["tickets"].append(str(ev.ticket_id))
            if ev.type in PRINTER_EVENTS:  # the kiosk's printer record as it is after the batch
                kiosk = str(ev.data.get("kiosk"))
                record = self.hall.state.get("printers", {}).get(kiosk)
                if record is not None:
                    set_["printers"] = {kiosk: record}
                else:
                    delete["printers"] = [kiosk]
            for n in {ev.counter, ev.data.get("to_counter"), (ev.data.get("ticket") or {}).get("counter")}:
                if n is not None and n in self.hall.counter_config:
                    set_["counters"][str(n)] = self.hall.counter_public(n)
            self._publish(_event_payload(ev), set_=set_, delete=delete)
        self._last_summaries.update(summaries)

    def _take_dirty(self) -> tuple[set[str], set[int]]:
        services, counters = self.hall.dirty_services, self.hall.dirty_counters
        self.hall.dirty_services, self.hall.dirty_counters = set(), set()
        return services, counters

    def published(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """What the screens were last sent of each service summary and counter record (by code and number):
        what a publication check compares the hall against."""
        return self._last_summaries, self._last_counters

    def _summaries(self) -> dict[str, Any]:
        now = self.hall.clock.now()
        return {s.code: self.hall.service_summary(s, now) for s in self.hall.config.services}

    def _counter_views(self) -> dict[str, dict[str, Any]]:
        return {str(n): self.hall.counter_public(n) for n in self.hall.counter_config}

    def _tick(self) -> None:
        """Heartbeat, presence expiry, and opening/closing of issuing as time passes."""
        assert self.pub is not None
        self._check_storage()
        now = time.monotonic()
        forget = []
        for key, dev in self.devices.items():  # least recently heard first: stop at the first one heard lately
            silent = now - dev.get("_seen", now)
            if silent <= PRESENCE_TIMEOUT:
                break
            if dev["online"]:
                dev["online"] = False
                self._presence_changed.add(key)
            if silent > PRESENCE_FORGET:
                forget.append(key)
        for key in forget:
            del self.devices[key]
            self._presence_changed.add(key)
        if self._presence_changed:
            # One event per heartbeat for all the devices that came or went: after a restart every
            # screen says hello at once, and an event each (to every screen) grew as their square.
            changed, self._presence_changed = self._presence_changed, set()
            came = {k: self.devices[k] for k in sorted(changed) if k in self.devices}
            # Only what the subscribers were told of needs deleting (an entry that came and went
            # within one beat was never published).
            went = sorted(k for k in changed if k not in self.devices and k in self._presence_published)
            self._presence_published.difference_update(went)
            self._presence_published.update(came)
            if came or went:
                self._publish({"type": "presence"}, set_={"devices": came}, delete={"devices": went} if went else None)
        self._close_days()  # before the remote tickets: a closed day's are closed_unserved, not lapsed
        if self.hall.remote_due():  # remote tickets not checked in by their deadline lapse (docs/web.md)
            try:
                lapsed = self.hall.execute("lapse_remote")["lapsed"]
                log.info("remote tickets lapsed (not checked in): %s", ", ".join(lapsed))
            except HallError as err:  # the database refused: tried again at the next beat
                log.error("could not lapse remote tickets: %s", err)
            self._flush()
        if self.hall.ratings_due():  # the hall's default rating after the window (docs/evaluation.md)
            try:
                rated = self.hall.execute("default_ratings")["rated"]
                log.info("default ratings given: %s", ", ".join(rated))
            except HallError as err:  # the database refused: tried again at the next beat
                log.error("could not give default ratings: %s", err)
            self._flush()
        self._check_alerts()
        at = self.hall.clock.now()
        day = self.hall.hours.business_day(at)
        if day != self._day:
            self._day = day
            self._prepare_reports(at)
            self._calendar = None  # a new day: check the calendar again, and repeat a warning
            self._warn_calendar(self.hall.hours.calendar_status(day))
        if self._calendar is None:
            self._publish_calendar(self.hall.hours.calendar_status(day))
        summaries = self._summaries()
        moved = {c: s for c, s in summaries.items()
                 if _without_time(s) != _without_time(self._last_summaries.get(c, {}))}
        if moved:
            self._publish({"type": "services_changed"}, set_={"services": moved})
            self._last_summaries = summaries
        beat = encode_publication(TOPIC_HEARTBEAT, {
            "type": "heartbeat", "epoch": self.epoch, "seq": self.seq, "now": _iso_dt(at)})
        self.pub.send_multipart(beat)
        if self.staff_pub is not None:
            self.staff_pub.send_multipart(beat)

    def _warn_calendar(self, status: dict[str, Any]) -> None:
        warning = status.get("warning")
        if warning:
            log.warning("%s: %s / %s", warning["code"], warning["message_en"], warning["message_zh"])

    def _publish_calendar(self, status: dict[str, Any]) -> None:
        """Publish the calendar's state at start and once a business day: a ``calendar_warning`` event
        while official holiday data misses today or the next 60 days (for supervision), and
        ``calendar_ok`` when a warning has ended. Both set the mirrors' ``calendar`` record."""
        warned, self._calendar = bool((self._calendar_sent or {}).get("warning")), status
        self._calendar_sent = status
        if status.get("warning"):
            self._publish(dict(status["warning"], type="calendar_warning"), set_={"calendar": status})
        elif warned:
            self._publish({"type": "calendar_ok"}, set_={"calendar": status})

    def _close_days(self) -> None:
        """Close a business day whose closing time has passed (Hall.close_day_if_due), durably, and
        publish its events; a failure is logged and the next heartbeat tries again."""
        if self.storage_down is not None or not self.hall.close_due():
            return  # an unwritable database is not touched: the close runs once it can be written
        self._begin_group()
        try:
            closed = self.hall.close_day_if_due()
        except HallError:  # not written (outside a group the journal refused it at once)
            log.exception("could not close the business day")
            closed = []
        self._end_group([])
        for day in closed:
            log.info("business day %s closed", day.isoformat())

    def _prepare_reports(self, now: Any) -> None:
        """A business day has ended: store the report facts of the days before it, as
        ``queuehall report --prepare`` does, so no report has to parse them (docs/reports.md). In a
        thread of its own while the hall is closed; SQLite copies a day per short transaction."""
        engine = getattr(self.hall.journal, "engine", None)
        if engine is None or self.storage_down is not None or \
                (self.report_prepare is not None and self.report_prepare.is_alive()):
            return
        config, today = self.hall.config, self.hall.hours.business_day(now)

        def prepare() -> None:
            try:
                from queuehall.broker.reports import ReportBuilder  # SQLAlchemy and the reports: only when needed

                done = ReportBuilder(engine, config).prepare(today - timedelta(days=REPORT_PREPARE_DAYS),
                                                             today - timedelta(days=1), now=now)
                log.info("report facts stored for %s", ", ".join(done["prepared"]) or "no new day")
            except Exception:  # a report can still compute them; the hall must not notice
                log.exception("could not store the report facts")

        thread = threading.Thread(target=prepare, name="queuehall-report-prepare", daemon=True)
        thread.start()
        self.report_prepare = thread  # only once started: another thread may join it at once


@dataclass
class BrokerSockets:
    """A broker's bound sockets: commands (ROUTER), public and staff events (PUB), and the CurveZMQ
    authenticator with its allow-list (None without keys)."""

    router: zmq.Socket
    pub: zmq.Socket
    staff_pub: zmq.Socket
    auth: Any = None
    allow: _AllowList | None = None

    def close(self) -> None:
        for s in (self.router, self.pub, self.staff_pub):
            s.close(0)
        if self.auth is not None:
            self.auth.stop()
            self.auth = None


def bind_sockets(ctx: zmq.Context, host: str, port: int, keys_dir: Path | None) -> BrokerSockets:
    """Bind the broker's sockets on ``port`` (commands), ``port + 1`` (public events) and ``port + 2`` (staff
    events); with a keys directory as a CurveZMQ server whose ZAP handler admits only allowed keys."""
    router = ctx.socket(zmq.ROUTER)
    pub = ctx.socket(zmq.PUB)
    staff_pub = ctx.socket(zmq.PUB)
    for s in (router, pub, staff_pub):
        s.linger = 0
    router.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES * 2)
    router.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a reconnecting device replaces its old pipe
    # A subscriber that stops reading loses messages (and resyncs when it wakes), never blocks us;
    # at a few kB per event this bounds what one stuck display can make us hold to some 40 MB.
    pub.setsockopt(zmq.SNDHWM, 10_000)
    staff_pub.setsockopt(zmq.SNDHWM, 10_000)
    socks = BrokerSockets(router, pub, staff_pub)
    if keys_dir is not None:
        from zmq.auth.thread import ThreadAuthenticator

        socks.allow = _AllowList(keys_dir)
        socks.auth = ThreadAuthenticator(ctx)
        socks.auth.start()
        socks.auth.configure_curve_callback(domain="*", credentials_provider=socks.allow)
        socks.auth.configure_curve_callback(domain=STAFF_DOMAIN, credentials_provider=socks.allow)
        staff_pub.zap_domain = STAFF_DOMAIN.encode()
        public, secret = broker_keys(keys_dir)
        for s in (router, pub, staff_pub):
            s.curve_server = True
            s.curve_publickey = public
            s.curve_secretkey = secret
    router.bind(f"tcp://{host}:{port}")
    pub.bind(f"tcp://{host}:{port + 1}")
    staff_pub.bind(f"tcp://{host}:{port + 2}")
    return socks


def standby_reply(frame: bytes) -> bytes:
    """The answer of a broker that is not serving to any request: BROKER_STANDBY, so the client moves on
    to the next broker address (queuehall/client.py) and sends the same request id there."""
    try:
        req = decode_request(frame)
        type_, rid = req.type, req.id
    except Exception:  # answered all the same: the client only needs to hear that this one is not serving
        type_, rid = "", request_id_of(frame)
    return encode_reply(error_reply(type_, rid, HallError("BROKER_STANDBY")))


def wait_for_lease(socks: BrokerSockets, lease: Lease, stop: threading.Event) -> bool:
    """Be the standby: answer every request BROKER_STANDBY and publish nothing, trying to take the hall's
    lease every TRY_SECONDS. True once it is taken (the caller loads the hall and serves), False on stop."""
    poller = zmq.Poller()
    poller.register(socks.router, zmq.POLLIN)
    next_try = 0.0
    while not stop.is_set():
        now = time.monotonic()
        if now >= next_try:
            if lease.try_acquire():
                return True
            next_try = now + TRY_SECONDS
        if poller.poll(round(max(0.0, min(next_try - time.monotonic(), 0.2)) * 1000)):
            while True:
                try:
                    frames = socks.router.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                if len(frames) == 2:
                    socks.router.send_multipart([frames[0], standby_reply(frames[1])])
    return False


class _TicketIndex:
    """A snapshot's ticket ids by what a counter's scope selects them on (one pass, then every asker's
    scope is a few set unions instead of a test of every ticket)."""

    def __init__(self, tickets: dict[str, dict[str, Any]]) -> None:
        self.all = tuple(tickets)
        self.unaddressed: dict[str, list[str]] = {}  # queue service -> tickets addressed to no counter
        self.addressed: dict[int, list[str]] = {}  # counter -> tickets addressed to it
        self.at_counter: dict[int, list[str]] = {}  # counter -> tickets called, served or missed there
        for k, t in tickets.items():
            target = t.get("target_counter")
            if target is None:
                self.unaddressed.setdefault(t["queue_service"], []).append(k)
            else:
                self.addressed.setdefault(target, []).append(k)
            if t.get("counter") is not None:
                self.at_counter.setdefault(t["counter"], []).append(k)


def _closes_group(frame: bytes) -> bool:
    """Whether the request must see the group before it written: a snapshot (see _on_batch), a ticket
    page's lookup, which may read a ticket that left memory in this very group from the database, or an
    ``events`` request, which reads the journal from the database."""
    if b"snapshot" not in frame and b"ticket_by_token" not in frame and b"events" not in frame:
        return False  # most requests: no need to parse them twice
    try:
        return decode_request(frame).type in ("snapshot", "ticket_by_token", "events")
    except Exception:  # handle() answers it properly
        return False


def _without_time(summary: dict[str, Any], *also: str) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k != "next_open" and k not in also}


# Events whose ``reason`` is a configured code or a rule the hall shows (a pause, a missed call), not
# free text a clerk typed.
_CODED_REASONS = frozenset({"counter_paused", "counter_resumed", "ticket_no_show"})


def _public_ticket(t: Any) -> Any:
    """A ticket as the public sees it: without the transfer note."""
    return dict(t, note="") if isinstance(t, dict) and t.get("note") else t


def _public_counter(c: Any) -> Any:
    """A counter as the public sees it: its called or serving ticket without the note."""
    return dict(c, ticket=_public_ticket(c["ticket"])) if isinstance(c, dict) and isinstance(
        c.get("ticket"), dict) and c["ticket"].get("note") else c


def _public_event(ev: dict[str, Any]) -> dict[str, Any]:
    """An event as the public sees it: no note, no free-text reason, its ticket without the note."""
    private = "note" in ev or ("reason" in ev and ev.get("type") not in _CODED_REASONS) or \
        (isinstance(ev.get("ticket"), dict) and ev["ticket"].get("note"))
    if not private:
        return ev
    out = {k: v for k, v in ev.items() if k != "note" and (k != "reason" or ev.get("type") in _CODED_REASONS)}
    if "ticket" in out:
        out["ticket"] = _public_ticket(out["ticket"])
    return out


def _public_body(body: dict[str, Any]) -> dict[str, Any]:
    """A publication as the public stream carries it (``body`` itself when nothing in it is private)."""
    event = _public_event(body["event"])
    set_ = body["set"]
    tickets, counters = set_.get("tickets") or {}, set_.get("counters") or {}
    public_tickets = {k: _public_ticket(t) for k, t in tickets.items()}
    public_counters = {k: _public_counter(c) for k, c in counters.items()}
    if event is body["event"] and all(public_tickets[k] is t for k, t in tickets.items()) and \
            all(public_counters[k] is c for k, c in counters.items()):
        return body
    return dict(body, event=event, set=dict(set_, **({"tickets": public_tickets} if tickets else {}),
                                            **({"counters": public_counters} if counters else {})))


def _public_parts(state: dict[str, Any], tickets: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    return (dict(state, recent_calls=[_public_event(e) for e in state.get("recent_calls", [])],
                 counters={k: _public_counter(c) for k, c in (state.get("counters") or {}).items()}),
            {k: _public_ticket(t) for k, t in tickets.items()})


def _public_result(result: Any) -> Any:
    """A reply's result (or a query's answer) for a public caller: its tickets and events without notes."""
    if not isinstance(result, dict):
        return result
    out = dict(result)
    if isinstance(out.get("ticket"), dict):
        out["ticket"] = _public_ticket(out["ticket"])
    if isinstance(out.get("events"), list):
        out["events"] = [_public_event(e) if isinstance(e, dict) else e for e in out["events"]]
    return out


def _public(set_: dict[str, Any]) -> dict[str, Any]:
    """Strip broker-private fields (``_seen``) from device records."""
    if "devices" in set_:
        set_ = dict(set_, devices={k: {f: v for f, v in d.items() if not f.startswith("_")}
                                   for k, d in set_["devices"].items()})
    return set_


def _event_payload(ev: Event) -> dict[str, Any]:
    """An engine event as published (and as listed in the snapshot's ``recent_calls``)."""
    return dict(ev.data, type=ev.type, at=_iso(ev), journal_seq=ev.seq, counter=ev.counter, clerk=ev.clerk,
                service=ev.service)


def _iso(ev: Event) -> str:
    return _iso_dt(ev.at)


def _iso_dt(at: Any) -> str:
    return at.isoformat().replace("+00:00", "Z")
