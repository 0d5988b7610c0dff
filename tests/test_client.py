"""The client library: StateMirror's sequencing rules, BrokerClient's Lazy-Pirate retries, and
the Link's liveness, resync and requests against a real broker on real sockets."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import queuehall.broker.server as server
import zmq

import queuehall.client as client
from queuehall.client import (
    RECENT_CALLS,
    BrokerClient,
    BrokerUnavailable,
    CommandRefused,
    Link,
    StateMirror,
    parse_endpoint,
)
from queuehall.protocol import (
    MAX_MESSAGE_BYTES,
    Reply,
    Request,
    decode_publication,
    decode_reply,
    decode_request,
    encode_reply,
    encode_request,
    new_id,
    now_iso,
    ok_reply,
)
from tests import broker_fixtures
from tests.broker_fixtures import BrokerThread, MirrorTap, free_port_pair, wait_in_step, wait_until

# The shared fixtures (pytest finds fixtures among a module's names).
manual_clock_fixture = broker_fixtures.manual_clock_fixture
start_broker_fixture = broker_fixtures.start_broker_fixture

PIN = "1234"


# ---------------------------------------------------------------------------------------------- StateMirror


def snapshot(seq: int = 5, epoch: str = "e1") -> dict[str, Any]:
    return {"epoch": epoch, "seq": seq, "state": {
        "service_order": ["P", "H"],
        "services": {"H": {"code": "H", "waiting": 0}, "P": {"code": "P", "waiting": 1}},
        "counters": {"9": {"number": 9, "state": "closed"}, "1": {"number": 1, "state": "open"}},
        "tickets": {"1": {"id": 1, "label": "A001", "status": "waiting", "queue_service": "P",
                          "entered_at": "2026-11-24T01:00:00Z"}},
        "recent_calls": [],
    }}


def event(seq: int, epoch: str = "e1", **body: Any) -> dict[str, Any]:
    return {"type": "event", "epoch": epoch, "seq": seq, "event": body.pop("event", {"type": "x"}),
            "set": body.get("set", {}), "del": body.get("del", {})}


def test_the_mirror_needs_a_snapshot_first() -> None:
    m = StateMirror()
    assert m.apply(event(1)) == "resync"
    assert not m.synced


def test_the_mirror_applies_the_next_event_and_drops_old_ones() -> None:
    snap = snapshot()
    m = StateMirror()
    m.load(snap)
    assert m.state["tickets"]["1"]["label"] == "A001"
    assert m.apply(event(4)) == "old"
    assert m.apply(event(5)) == "old"
    new = {"id": 2, "label": "B001", "status": "waiting", "queue_service": "H", "entered_at": "2026-11-24T01:01:00Z"}
    assert m.apply(event(6, set={"tickets": {"2": new}, "services": {"H": {"code": "H", "waiting": 1}}})) == "applied"
    assert m.seq == 6
    assert m.state["tickets"]["2"] == new and m.state["services"]["H"]["waiting"] == 1
    assert m.apply(event(7, **{"del": {"tickets": ["1", "404"]}})) == "applied"
    assert list(m.state["tickets"]) == ["2"]
    assert m.apply(event(7)) == "old"


def test_a_gap_a_new_epoch_or_a_heartbeat_ahead_means_resync() -> None:
    for msg in (event(7), event(6, epoch="e2"),
                {"type": "heartbeat", "epoch": "e1", "seq": 6}, {"type": "heartbeat", "epoch": "e2", "seq": 5}):
        m = StateMirror()
        m.load(snapshot())
        assert m.apply(msg) == "resync", msg
        assert not m.synced
        assert m.apply(event(6)) == "resync"  # nothing more is applied until a new snapshot
    m = StateMirror()
    m.load(snapshot())
    assert m.apply({"type": "heartbeat", "epoch": "e1", "seq": 5}) == "old"
    assert m.synced


def test_the_mirror_keeps_the_last_calls_and_offers_views() -> None:
    m = StateMirror()
    m.load(snapshot())
    for i in range(RECENT_CALLS + 5):
        m.apply(event(6 + i, event={"type": "ticket_called", "ticket": {"label": f"A{i:03d}"}}))
    calls = m.state["recent_calls"]
    assert len(calls) == RECENT_CALLS
    assert calls[-1]["ticket"]["label"] == f"A{RECENT_CALLS + 4:03d}"
    assert [s["code"] for s in m.services()] == ["P", "H"]  # configured order, not key order
    assert [c["number"] for c in m.counters()] == [1, 9]
    assert [t["label"] for t in m.waiting("P")] == ["A001"] and m.waiting("H") == []


# ---------------------------------------------------------------------------------------------- endpoints


def test_parse_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QUEUEHALL_BROKER", raising=False)
    assert parse_endpoint(None) == ("127.0.0.1", 5555)
    assert parse_endpoint("hall-server:6000") == ("hall-server", 6000)
    monkeypatch.setenv("QUEUEHALL_BROKER", "10.0.0.5:7000")
    assert parse_endpoint(None) == ("10.0.0.5", 7000)
    assert parse_endpoint("h:1") == ("h", 1)
    for bad in ("nohost", ":5555", "host:", "host:abc"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            parse_endpoint(bad)


# ---------------------------------------------------------------------------------------------- BrokerClient


class Responder:
    """A scripted ROUTER standing in for the broker, to drive the client's retry logic exactly.

    ``script(n, request)`` returns the reply frames to send for the n-th request received."""

    def __init__(self, script: Callable[[int, Any], list[bytes]]) -> None:
        self.port = free_port_pair()
        self.script = script
        self.received: list[tuple[bytes, Any]] = []  # (routing id, request)
        self._stop = threading.Event()
        self._sock = zmq.Context.instance().socket(zmq.ROUTER)
        self._sock.linger = 0
        self._sock.bind(f"tcp://127.0.0.1:{self.port}")
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._sock.poll(20):
                continue
            ident, frame = self._sock.recv_multipart()
            req = decode_request(frame)
            self.received.append((ident, req))
            for out in self.script(len(self.received), req):
                self._sock.send_multipart([ident, out])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close(0)


def test_a_link_whose_broker_dies_before_its_first_heartbeat_reports_it_dead() -> None:
    """A broker that answers the hello and the snapshot and then falls silent before any heartbeat
    reached the screen: the screen shows its state, so it must also say when the broker is gone."""
    silent = threading.Event()

    def script(n: int, req: Any) -> list[bytes]:
        if silent.is_set():
            return []
        result: dict[str, Any] = {"epoch": "e1", "seq": 0, "client": req.client}
        if req.type == "snapshot":
            result = {"epoch": "e1", "seq": 0, "state": {"services": {}, "counters": {}, "tickets": {}}}
            silent.set()  # the broker dies right after answering it
        return [encode_reply(ok_reply(req.type, req.id, result))]

    r = Responder(script)  # no PUB socket at all: not one heartbeat
    link = Link(f"127.0.0.1:{r.port}", role="kiosk", request_timeout=0.5)
    tap = MirrorTap(link)
    link.start()
    try:
        tap.wait(lambda t: t.epoch == "e1", what="the snapshot")
        t0 = time.monotonic()
        tap.wait(lambda t: t.connection and t.connection[-1][0] is False, timeout=6, what="the broker reported dead")
        assert [up for up, _t in tap.connection] == [True, False]
        assert time.monotonic() - t0 < 4.0 and not link.alive and not link.mirror.synced
    finally:
        link.stop()
        r.close()


def test_a_timeout_retries_on_a_fresh_socket_with_the_same_id() -> None:
    def script(n: int, req: Any) -> list[bytes]:
        return [] if n < 3 else [encode_reply(ok_reply(req.type, req.id, {"n": n}))]

    r = Responder(script)
    c = BrokerClient(f"127.0.0.1:{r.port}", timeout=0.2, retries=3)
    try:
        assert c.request("take_ticket", service="P") == {"n": 3}
    finally:
        c.close()
        r.close()
    ids = {req.id for _, req in r.received}
    assert len(r.received) == 3 and len(ids) == 1
    assert len({ident for ident, _ in r.received}) == 3  # Lazy Pirate: a new socket per attempt
    assert {req.client for _, req in r.received} == {c.client_id}


@pytest.mark.parametrize("standard_json", [False, True])
def test_late_replies_and_garbage_are_skipped(standard_json: bool) -> None:
    """Alike with orjson and with the standard library's json (the command line's one-request client)."""

    def script(n: int, req: Any) -> list[bytes]:
        late = encode_reply(ok_reply(req.type, "an-earlier-request", {"late": True}))
        error = {"code": "QUEUE_EMPTY", "message_zh": "当前没有等候的号", "message_en": "Nobody is waiting",
                 "details": {}}
        refused = Reply(type="call_next_reply", re=req.id, status="error", error=error)
        return [b"not json", b'{"status": "maybe"}', late, encode_reply(refused)]

    r = Responder(script)
    c = BrokerClient(f"127.0.0.1:{r.port}", timeout=2.0, retries=0, standard_json=standard_json)
    try:
        with pytest.raises(CommandRefused) as err:
            c.request("call_next", counter=1)
    finally:
        c.close()
        r.close()
    assert err.value.code == "QUEUE_EMPTY"
    assert err.value.message_zh == "当前没有等候的号" and err.value.details == {}
    assert len(r.received) == 1
    # None-valued arguments are not sent at all.
    assert r.received[0][1].args == {"counter": 1}


def test_no_answer_at_all_is_broker_unavailable() -> None:
    r = Responder(lambda n, req: [])
    c = BrokerClient(f"127.0.0.1:{r.port}", timeout=0.1, retries=2)
    try:
        with pytest.raises(BrokerUnavailable, match="did not answer ping"):
            c.request("ping")
    finally:
        c.close()
        r.close()
    assert len(r.received) == 3


# ---------------------------------------------------------------------------------------------- messages


def test_a_request_is_the_same_bytes_with_the_standard_librarys_json() -> None:
    """The command line encodes its one request with json, everything else with orjson: for the command line's
    arguments (strings, integers, booleans) the broker sees the same bytes; a float may be spelled otherwise
    (1e-07, 1e-7) and reads back the same."""
    for args in ({"service": "passport"}, {"counter": 3, "session": None, "takeover": True, "level": -1},
                 {"reason": "午休 \"外出\"\n\t\u200b\x01 / \\ 😀", "ticket": "A001", "pin": "0042"},
                 {"nested": {"list": [1, 12345678901234, None, False, "é"]}, "empty": {}}):
        req = Request(type="take_ticket", args=args, client="c-1")
        fast, light = encode_request(req), encode_request(req, standard_json=True)
        assert fast == light, (fast, light)
        assert decode_request(light) == req
    req = Request(type="x", args={"floats": [2.5, 1e-7, 1e16, 0.1]}, client="c-1")
    assert decode_request(encode_request(req, standard_json=True)) == decode_request(encode_request(req)) == req


def test_a_reply_reads_the_same_with_the_standard_librarys_json() -> None:
    error = {"code": "QUEUE_EMPTY", "message_zh": "当前没有等候的号", "message_en": "Nobody is waiting", "details": {}}
    for rep in (ok_reply("call_next", "r1", {"ticket": {"id": 7, "label": "A007", "wait_s": 1.25, "note": None}}),
                Reply(type="call_next_reply", re="r2", status="error", error=error)):
        frame = encode_reply(rep)
        assert decode_reply(frame) == decode_reply(frame, standard_json=True) == rep


def test_messages_are_plain_classes_compared_by_value() -> None:
    req = Request(type="ping")
    assert req.args == {} and req.client == "" and req.v == 1 and len(req.id) == 32 and req.time.endswith("Z")
    same = Request(**{f: getattr(req, f) for f in Request.FIELDS})
    assert same == req and same is not req and Request(type="ping") != req
    assert repr(req).startswith("Request(type='ping', args={}, client='', id=")
    rep = ok_reply("ping", req.id, {})
    assert rep.ok and rep.type == "ping_reply" and Reply(**{f: getattr(rep, f) for f in Reply.FIELDS}) == rep
    assert not Reply(type="x_reply", re="r", status="error", error={}).ok
    with pytest.raises(TypeError):
        hash(req)
    assert len({new_id() for _ in range(1000)}) == 1000 and all(c in "0123456789abcdef" for c in new_id())
    # now_iso: the UTC time to the millisecond, as datetime's isoformat wrote it.
    from datetime import UTC, datetime

    stamp = now_iso()
    parsed = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert len(stamp) == 24 and abs((datetime.now(UTC) - parsed).total_seconds()) < 5


# ---------------------------------------------------------------------------------------------- Link


def test_link_reports_the_broker_dead_within_3_s_and_resyncs_after_a_restart(
        start_broker: Callable[..., BrokerThread]) -> None:
    bt = start_broker()
    link = Link(bt.endpoint, role="display", name="wall")
    tap = MirrorTap(link)
    link.start()
    c = BrokerClient(bt.endpoint, timeout=1.0, retries=5)
    try:
        tap.wait(lambda t: t.connection and t.connection[-1][0] and t.epoch is not None, what="connected")
        old_epoch = tap.epoch
        c.request("take_ticket", service="P")
        tap.wait(lambda t: len(t.state.get("tickets", {})) == 1, what="A001 on the mirror")

        stopping = time.monotonic()
        bt.stop()
        tap.wait(lambda t: not t.connection[-1][0], timeout=6, what="the link to report the broker dead")
        # At once: its sockets closed, the link's monitor saw the connection drop (it used to wait DEAD_AFTER,
        # 3 s, of silence; tests/test_link_disconnect.py kills a broker process with the silence set to 60 s).
        dead_after = tap.connection[-1][1] - stopping
        assert 0 <= dead_after < 4.0, dead_after
        assert link.alive is False and link.mirror.synced is False

        bt.start()  # same ports and database, a new epoch
        restarted = time.monotonic()
        tap.wait(lambda t: t.connection[-1][0], timeout=8, what="the link to see the broker again")
        tap.wait(lambda t: t.epoch == bt.broker.epoch, what="a resync to the new epoch")  # type: ignore[union-attr]
        assert tap.epoch != old_epoch
        assert time.monotonic() - restarted < 7
        c.request("take_ticket", service="P")
        tap.wait(lambda t: len(t.state.get("tickets", {})) == 2, what="A002 on the mirror")
        wait_in_step(tap, bt.endpoint)
    finally:
        c.close()
        link.stop()


def test_a_screen_callback_that_raises_does_not_end_the_link(start_broker: Callable[..., BrokerThread],
                                                             caplog: pytest.LogCaptureFixture) -> None:
    """A bug in a screen's callback is logged; the link keeps its mirror, events and replies going
    (it used to end the link's thread, and the screen froze on its last state)."""
    bt = start_broker()
    events: list[int] = []

    def on_event(msg: dict[str, Any]) -> None:
        events.append(msg["seq"])
        raise RuntimeError("a screen's bug")

    def on_state(mirror: Any) -> None:
        raise ValueError("another screen's bug")

    link = Link(bt.endpoint, role="display", request_timeout=2.0)
    link.on_event, link.on_state = on_event, on_state
    link.start()
    c = BrokerClient(bt.endpoint, timeout=2.0, retries=2)
    try:
        wait_until(lambda: link.mirror.synced, what="first snapshot")
        c.request("take_ticket", service="P")
        wait_until(lambda: len(link.mirror.waiting()) == 1, what="the first event applied")
        c.request("take_ticket", service="P")
        c.request("take_ticket", service="P")
        # Later events still arrive and are applied: the thread outlived the exceptions.
        wait_until(lambda: len(link.mirror.waiting()) == 3, what="later events applied")
        assert link._thread is not None and link._thread.is_alive()
        assert len(events) >= 3 and link.callback_errors >= 6
        assert "a screen's bug" in caplog.text and "the link carries on" in caplog.text
    finally:
        c.close()
        link.stop()


def test_link_requests_get_their_reply_or_none(start_broker: Callable[..., BrokerThread]) -> None:
    bt = start_broker()
    replies: dict[str, Reply | None] = {}
    done = threading.Condition()

    def on_reply(rid: str, rep: Reply | None) -> None:
        with done:
            replies[rid] = rep
            done.notify_all()

    def reply_to(rid: str, timeout: float = 5.0) -> Reply | None:
        with done:
            assert done.wait_for(lambda: rid in replies, timeout), f"no reply to {rid}"
            return replies[rid]

    link = Link(bt.endpoint, role="counter", counter=1, request_timeout=0.8)
    link.on_reply = on_reply
    link.start()
    try:
        rep = reply_to(link.request("sign_in", counter=1, clerk="c1a", pin=PIN))
        assert rep is not None and rep.ok and rep.result["session"]
        rep = reply_to(link.request("call_next", counter=1, session=rep.result["session"]))
        assert rep is not None and not rep.ok and rep.error["code"] == "QUEUE_EMPTY"
        bt.stop()
        t0 = time.monotonic()
        rid = link.request("call_next", counter=1)
        assert reply_to(rid) is None  # unavailable, reported once request_timeout has passed
        assert 0.7 < time.monotonic() - t0 < 3.0
        # Internal traffic (hello, ping, snapshot) never reaches on_reply.
        assert all(r is None or r.type in ("sign_in_reply", "call_next_reply") for r in replies.values())
    finally:
        link.stop()


def test_a_link_request_whose_reply_is_lost_is_retried_and_done_once(
        start_broker: Callable[..., BrokerThread], monkeypatch: pytest.MonkeyPatch) -> None:
    """The link thread sleeps until something falls due: an unanswered request must still be sent
    again (same id) after RETRY_SECONDS, and the retry gets the original outcome, not a second one."""
    bt = start_broker()
    replies: dict[str, Reply | None] = {}
    lost: list[str] = []
    real_encode = server.encode_reply

    def losing_the_first_take_reply(rep: Reply) -> bytes:
        if rep.type == "take_ticket_reply" and not lost:
            lost.append(rep.re)
            rep = Reply(type=rep.type, re="lost-on-the-way", status=rep.status, result=rep.result)
        return real_encode(rep)

    monkeypatch.setattr(server, "encode_reply", losing_the_first_take_reply)
    link = Link(bt.endpoint, role="kiosk", request_timeout=8.0)
    link.on_reply = lambda rid, rep: replies.__setitem__(rid, rep)
    link.start()
    try:
        wait_until(lambda: link.mirror.synced, what="the kiosk's first snapshot")
        sent = time.monotonic()
        rid = link.request("take_ticket", service="P")
        rep = wait_until(lambda: replies.get(rid), timeout=8, what="the reply to the retried request")
        assert lost == [rid] and time.monotonic() - sent >= client.RETRY_SECONDS
        assert rep.ok and rep.result["ticket"]["label"] == "A001"
        c = BrokerClient(bt.endpoint)
        try:
            tickets = c.request("snapshot")["state"]["tickets"].values()
        finally:
            c.close()
        assert [t["label"] for t in tickets] == ["A001"]  # one ticket, not two
    finally:
        link.stop()


def test_a_snapshot_announces_nothing_only_events_do(start_broker: Callable[..., BrokerThread]) -> None:
    bt = start_broker()
    early = Link(bt.endpoint, role="display", name="early")
    seen = MirrorTap(early)
    early.start()
    c = BrokerClient(bt.endpoint)
    late = Link(bt.endpoint, role="display", name="late")
    tap = MirrorTap(late)
    try:
        seen.wait(lambda t: t.epoch is not None, what="the first snapshot")
        c.request("sign_in", counter=1, clerk="c1a", pin=PIN)
        c.request("take_ticket", service="P")
        c.request("call_next", counter=1)
        seen.wait(lambda t: any(e["event"]["type"] == "ticket_called" for e in t.events), what="the call")
        (call,) = [e["event"] for e in seen.events if e["event"]["type"] == "ticket_called"]

        late.start()  # joins after the call: it sees it in the snapshot, and announces nothing
        tap.wait(lambda t: t.epoch is not None, what="the late display's snapshot")
        assert tap.state["counters"]["1"]["ticket"]["label"] == "A001"
        # The recent calls read exactly the same whether they came in a snapshot or as an event.
        assert tap.state["recent_calls"] == [call]
        assert not [e for e in tap.events if e["event"]["type"].startswith("ticket_")]

        c.request("recall", counter=1)
        tap.wait(lambda t: any(e["event"]["type"] == "ticket_called" for e in t.events), what="the recall")
        (recall,) = [e["event"] for e in tap.events if e["event"]["type"] == "ticket_called"]
        assert recall["kind"] == "recall" and recall["ticket"]["label"] == "A001"
        assert tap.state["recent_calls"] == [call, recall]
    finally:
        c.close()
        early.stop()
        late.stop()


def test_a_stopped_link_can_start_again(start_broker: Callable[..., BrokerThread],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The mirror survives stop/start; what happened meanwhile is a gap, repaired by a snapshot."""
    monkeypatch.setattr(server, "HEARTBEAT_SECONDS", 0.1)  # the heartbeat reveals the gap
    bt = start_broker()
    link = Link(bt.endpoint, role="display")
    tap = MirrorTap(link)
    c = BrokerClient(bt.endpoint)
    # A second subscriber proves each event has left the broker before the link comes back.
    witness = zmq.Context.instance().socket(zmq.SUB)
    witness.linger = 0
    witness.subscribe(b"")
    witness.connect(f"tcp://127.0.0.1:{bt.port + 1}")
    try:
        assert witness.poll(5000)  # a heartbeat: the witness is subscribed
        link.start()
        tap.wait(lambda t: t.epoch is not None, what="the first snapshot")
        for round_ in range(1, 4):
            link.stop()
            c.request("take_ticket", service="H")  # while nobody listens
            while True:
                assert witness.poll(5000), "the event was never published"
                _, msg = decode_publication(witness.recv_multipart())
                if msg.get("event", {}).get("type") == "ticket_issued":
                    break
            link.start()
            tap.wait(lambda t, n=round_: len(t.state.get("tickets", {})) == n, what=f"round {round_}")
            assert link.resyncs == round_ + 1
        wait_in_step(tap, bt.endpoint)
    finally:
        witness.close(0)
        c.close()
        link.stop()


def test_a_busy_hall_whose_snapshot_exceeds_the_request_limit(start_broker: Callable[..., BrokerThread]) -> None:
    """Only requests are capped at 64 KiB; a snapshot of a busy hall is bigger and must get through."""
    bt = start_broker()
    c = BrokerClient(bt.endpoint)
    for i in range(220):
        c.request("take_ticket", service=("P", "H")[i % 2])
    snap = c.request("snapshot")
    assert len(encode_reply(ok_reply("snapshot", "x", snap))) > MAX_MESSAGE_BYTES
    link = Link(bt.endpoint, role="display")
    tap = MirrorTap(link)
    link.start()
    try:
        tap.wait(lambda t: len(t.state.get("tickets", {})) == 220, what="the big snapshot")
    finally:
        c.close()
        link.stop()


def test_a_link_to_no_broker_stays_down_and_fails_its_requests() -> None:
    link = Link(f"127.0.0.1:{free_port_pair()}", role="display", request_timeout=0.3)
    tap = MirrorTap(link)
    got: list[tuple[str, Reply | None]] = []
    link.on_reply = lambda rid, rep: got.append((rid, rep))
    link.start()
    try:
        rid = link.request("take_ticket", service="P")
        with pytest.raises(AssertionError, match="timed out"):
            tap.wait(lambda t: t.connection, timeout=1.0)  # never reported alive
        assert got == [(rid, None)]
        assert not link.alive and not link.mirror.synced and tap.epoch is None
    finally:
        link.stop()
