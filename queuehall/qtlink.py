"""Qt adapter for :class:`queuehall.client.Link`: broker replies and events as Qt signals.

The link's sockets live in its own thread, so the GUI thread never blocks on the
network. Signals emitted from that thread reach slots in the GUI thread as queued
calls. Requests return at once with an id; the answer arrives as ``replied``.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal

from queuehall.client import Link, Security, StateMirror
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

    state_changed = Signal(dict)
    event = Signal(dict)
    connection_changed = Signal(bool)
    replied = Signal(str, dict)

    def __init__(self, endpoint: str | None = None, *, role: str, name: str = "", counter: int | None = None,
                 security: Security | None = None, request_timeout: float = 3.0,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.link = Link(endpoint, role=role, name=name, counter=counter, security=security,
                         request_timeout=request_timeout)
        self.link.on_state = self._state
        self.link.on_event = lambda msg: self.event.emit(msg)
        self.link.on_connection = lambda up: self.connection_changed.emit(up)
        self.link.on_reply = self._reply

    def _state(self, mirror: StateMirror) -> None:
        # A shallow copy per table is enough: the link replaces records, it never edits them in place.
        self.state_changed.emit({k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v)
                                 for k, v in mirror.state.items()})

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
