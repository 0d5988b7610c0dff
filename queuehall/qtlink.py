"""Qt adapter for :class:`queuehall.client.Link`: broker replies and events as Qt signals.

The link's sockets live in its own thread, so the GUI thread never blocks on the
network. Signals emitted from that thread reach slots in the GUI thread as queued
calls. Requests return at once with an id; the answer arrives as ``replied``.

Two rules keep a screen's memory flat over a day of calls (bench/soak_bench.py):

* payloads cross threads as Python objects (``Signal(object)``): a ``Signal(dict)`` is converted to a C++
  QVariantMap and back for every emission, the whole hall state each time;
* states are coalesced: the link thread keeps only the latest copy and asks the GUI thread once to take what
  waits; a GUI thread that falls behind a burst of events then skips the states it would have drawn over,
  where a queued signal per event let the copies pile up (1.4 GB after 1,500 calls on a busy machine).
  Events are never dropped, and a state never overtakes an event: the GUI thread takes the waiting events,
  in order, then the latest state, which includes no event it has not yet been given (so a display never
  learns of a call from the state first and takes it for an old one).
"""

from __future__ import annotations

import threading
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal

from queuehall.client import Link, Security, StateMirror
from queuehall.clock import HallClock
from queuehall.protocol import Reply


class QtLink(QObject):
    """A broker connection for one Qt screen (kiosk, counter or display).

    Signals:
      * ``state_changed(dict)``: the mirror's state after a snapshot or an event (a copy
        owned by the receiver);
      * ``event(dict)``: one applied event publication (never snapshot contents, so a
        resynchronisation never re-announces a call);
      * ``connection_changed(bool)``: broker alive or dead (no heartbeat for 3 s);
      * ``replied(str, dict)``: ``(request id, reply)``; the reply is
        ``{"status": "ok", "result": …}``, ``{"status": "error", "error": …}`` or
        ``{"status": "unavailable"}`` when the broker did not answer in time.
    """

    state_changed = Signal(object)
    event = Signal(object)  # type: ignore[assignment]  # shadows QObject.event(); screens connect to it by name
    connection_changed = Signal(bool)
    replied = Signal(str, object)
    _waiting = Signal()  # from the link thread: events or a newer state wait to be taken

    def __init__(self, endpoint: str | None = None, *, role: str, name: str = "", counter: int | None = None,
                 security: Security | None = None, request_timeout: float = 3.0, client_id: str | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        self._state_copy: dict[str, Any] | None = None
        self._notified = False
        self._waiting.connect(self._deliver, Qt.ConnectionType.QueuedConnection)
        self.link = Link(endpoint, role=role, name=name, counter=counter, security=security,
                         request_timeout=request_timeout, client_id=client_id)
        self.link.on_state = self._state
        self.link.on_event = self._event
        self.link.on_connection = lambda up: self.connection_changed.emit(up)
        self.link.on_reply = self._reply

    def _event(self, msg: dict[str, Any]) -> None:
        # In the link thread, which calls this before _state for the same event.
        with self._lock:
            self._events.append(msg)
            notify, self._notified = not self._notified, True
        if notify:
            self._waiting.emit()

    def _state(self, mirror: StateMirror) -> None:
        # In the link thread. A shallow copy per table is enough: the link replaces records, it never edits
        # them in place.
        state = {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v)
                 for k, v in mirror.state.items()}
        with self._lock:
            self._state_copy = state
            notify, self._notified = not self._notified, True
        if notify:
            self._waiting.emit()

    def _deliver(self) -> None:
        # In the GUI thread: everything that waits, taken together so the state is no newer than the events.
        with self._lock:
            events, self._events = self._events, []
            state, self._state_copy = self._state_copy, None
            self._notified = False
        for msg in events:
            self.event.emit(msg)
        if state is not None:
            self.state_changed.emit(state)

    def _reply(self, rid: str, rep: Reply | None) -> None:
        if rep is None:
            self.replied.emit(rid, {"status": "unavailable"})
        elif rep.ok:
            self.replied.emit(rid, {"status": "ok", "result": rep.result or {}})
        else:
            self.replied.emit(rid, {"status": "error", "error": rep.error or {}})

    @property
    def alive(self) -> bool:
        return self.link.alive

    @property
    def hall_clock(self) -> HallClock:
        """The hall's time from the broker, advanced locally (:attr:`queuehall.client.Link.hall_clock`):
        a screen's "now", whatever its PC's clock says."""
        return self.link.hall_clock

    @property
    def client_id(self) -> str:
        return self.link.client_id

    def start(self) -> None:
        self.link.start()

    def stop(self) -> None:
        self.link.stop()

    def request(self, type_: str, *, request_id: str | None = None, **args: Any) -> str:
        """Send a command without waiting; returns the request id matched by ``replied``.

        Re-sending with the same ``request_id`` returns the original outcome (see Link.request)."""
        return self.link.request(type_, request_id=request_id, **args)
