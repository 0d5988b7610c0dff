"""Personal data stays with the staff: notes and free-text reasons never reach a public screen.

Issue 14, item 11: a transfer note holding an ID number went to every device, wall displays and
kiosks included. Real CurveZMQ sockets here: a display and a kiosk (and the web gateway's role)
follow the hall on the public event stream and take their snapshots; a counter follows the staff
stream. The note's and the reasons' bytes must reach the counter and never the public screens,
and every stream keeps the Clone rules: the same sequence numbers, no gap.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zmq

from queuehall.client import BrokerClient, Security
from queuehall.protocol import TOPIC_EVENT, TOPIC_HEARTBEAT, Request, decode_publication
from tests import broker_fixtures
from tests.broker_fixtures import BrokerThread, security, wait_until

keys_dir_fixture = broker_fixtures.keys_dir_fixture
manual_clock_fixture = broker_fixtures.manual_clock_fixture
start_broker_fixture = broker_fixtures.start_broker_fixture

ID_NUMBER = "110101199003071234"  # a (made-up) resident identity card number
NOTE = f"申请人身份证 {ID_NUMBER} 缺复印件"
CALL_REASON = f"老人 {ID_NUMBER[:6]}X 腿脚不便"
CANCEL_REASON = "身份证号 440301198801017777 已离开"
SECRETS = [ID_NUMBER.encode(), ID_NUMBER[:6].encode() + b"X", b"440301198801017777", "缺复印件".encode()]


class Tap:
    """A SUB socket on one event stream, keeping every frame it receives."""

    def __init__(self, bt: BrokerThread, offset: int, sec: Security) -> None:
        self.sock = zmq.Context.instance().socket(zmq.SUB)
        self.sock.linger = 0
        sec.apply(self.sock)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.connect(f"tcp://127.0.0.1:{bt.port + offset}")
        self.frames: list[list[bytes]] = []

    def drain(self) -> list[list[bytes]]:
        while self.sock.poll(0, zmq.POLLIN):
            self.frames.append(self.sock.recv_multipart())
        return self.frames

    def events(self) -> list[dict[str, Any]]:
        return [decode_publication(f)[1] for f in self.drain() if f[0] == TOPIC_EVENT]

    def heard_a_beat(self) -> bool:
        return any(f[0] == TOPIC_HEARTBEAT for f in self.drain())

    def close(self) -> None:
        self.sock.close(0)


def leaked(data: bytes) -> list[bytes]:
    return [s for s in SECRETS if s in data]


@pytest.fixture(name="hall")
def hall_fixture(start_broker: Callable[..., BrokerThread], keys_dir: Path) -> BrokerThread:
    return start_broker(keys_dir=keys_dir)


def test_public_screens_never_receive_notes_or_reasons(hall: BrokerThread, keys_dir: Path) -> None:
    bt = hall
    taps = {name: Tap(bt, 1, security(keys_dir, name)) for name in ("wall-1", "kiosk-1")}
    staff = Tap(bt, 2, security(keys_dir, "counter-1"))
    # A public key may not even connect to the staff stream (the ZAP handler refuses it).
    sneaky = Tap(bt, 2, security(keys_dir, "wall-1"))
    admin = BrokerClient(bt.endpoint, security=security(keys_dir, "manager"))
    try:
        wait_until(lambda: all(t.heard_a_beat() for t in (*taps.values(), staff)), 10, "every tap connected")
        for code in ("P", "P", "P"):
            admin.request("take_ticket", service=code)
        admin.request("sign_in", counter=1, clerk="c1a", pin="1234")
        admin.request("sign_in", counter=2, clerk="c2a", pin="1234")
        admin.request("call_next", counter=1)
        admin.request("transfer", counter=1, service="H", note=NOTE)  # A001 to H, with the note
        admin.request("call_ticket", counter=2, ticket="A001", reason=CALL_REASON)
        admin.request("cancel_ticket", ticket="A002", reason=CANCEL_REASON)
        last = admin.request("ping")["seq"]
        wait_until(lambda: all(t.events() and t.events()[-1]["seq"] == last for t in (*taps.values(), staff)),
                   10, "every event on every stream")

        # The counter has them all: the note with the transfer and with the ticket, the reasons.
        staff_bytes = b"".join(f[1] for f in staff.drain())
        assert leaked(staff_bytes) == SECRETS
        # The public streams: not a byte of them, yet the same events with the same sequence numbers.
        for name, tap in taps.items():
            public_bytes = b"".join(f[1] for f in tap.drain())
            assert leaked(public_bytes) == [], (name, [f[1][:600] for f in tap.drain() if leaked(f[1])])
            assert [e["seq"] for e in tap.events()] == [e["seq"] for e in staff.events()], name
            assert [e["event"]["type"] for e in tap.events()] == [e["event"]["type"] for e in staff.events()]
        seqs = [e["seq"] for e in staff.events()]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no gap: every screen can check it
        transferred = next(e for e in taps["wall-1"].events() if e["event"]["type"] == "ticket_transferred")
        assert "note" not in transferred["event"] and transferred["event"]["ticket"]["note"] == ""
        assert transferred["event"]["to_service"] == "H"  # what the hall shows stays
        assert not sneaky.drain()

        # Snapshots likewise, by the asker's role (from its key); and the journal a display may read.
        for name, asks in (("wall-1", ("snapshot", "events")), ("kiosk-1", ("snapshot",)),
                           ("counter-1", ("snapshot",)), ("manager", ("snapshot", "events"))):
            c = BrokerClient(bt.endpoint, security=security(keys_dir, name))
            try:
                for ask in asks:
                    rep = c.send(Request(type=ask, args={"after": 0} if ask == "events" else {}))
                    assert rep.ok, (name, ask, rep.error)
                    text = repr(rep.result).encode("utf-8")
                    if name in ("wall-1", "kiosk-1"):
                        assert leaked(text) == [], (name, ask)
                    else:
                        assert ID_NUMBER.encode() in text, (name, ask)
            finally:
                c.close()
    finally:
        for t in (*taps.values(), staff, sneaky):
            t.close()
        admin.close()
