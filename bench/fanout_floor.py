"""The floor under call -> display on this machine: one publication reaching K subscriber processes,
with no broker work, no database and no other load; prints one JSON object.

``bench/broker_bench.py`` measures call -> display in a whole hall (200 counters, 20 displays and
10 kiosks, 22 subscriber processes in all, on the broker's two cores). This benchmark measures the
part of that figure no broker can shorten: the way from the publishing socket to every subscriber
process. A real ``ticket_called`` publication is first captured from a real broker (the default hall
with 200 counters, as in the broker benchmark); then a bare publisher with nothing else to do sends
it (renumbered) every ``--gap`` seconds to K subscriber processes, each either

* ``bare``: a ZeroMQ SUB socket in the main thread that receives and decodes each message, or
* ``link``: a :class:`~queuehall.client.Link` (role display: its thread, poller, decoding, mirror
  and callbacks), the way every queuehall screen receives events.

The publisher answers the Links' hello, ping and snapshot requests itself (an empty hall state).
Subscribers run at niceness ``--nice`` (10, as the broker benchmark's clients). For every (message,
subscriber) pair the latency is the subscriber's ``time.monotonic()`` on receipt minus the
publisher's just before sending (one clock for all processes on Linux); ``last_of_k`` is, per
message, the latency of the last subscriber to have it. ``cpu_ms_per_message`` is the subscribers'
CPU time (user + system, all threads) from each one's first message to its end, per later message
(the clock ticks at 10 ms: use enough messages).

Usage::

    .venv/bin/python bench/fanout_floor.py [--subscribers 1 22] [--modes bare link] [--messages 200]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import benchlib  # noqa: E402  (bench/benchlib.py, beside this script)
import zmq  # noqa: E402

from queuehall.demo import free_port  # noqa: E402
from queuehall.protocol import (  # noqa: E402
    TOPIC_EVENT,
    TOPIC_HEARTBEAT,
    decode_publication,
    decode_request,
    encode_publication,
    encode_reply,
    ok_reply,
)

EPOCH = "fanout-floor"


def pct(values: list[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile (0 < p <= 100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50": round(pct(values, 50), 2), "p90": round(pct(values, 90), 2),
            "p99": round(pct(values, 99), 2), "max": round(max(values), 2)}


def capture_call_event() -> dict[str, Any]:
    """The body of a real ``ticket_called`` publication from a real broker (SQLite in a temporary
    directory): the default hall with 200 counters, one ticket taken and called at counter 1."""
    from broker_bench import PIN, hall_config, sim_start
    from queuehall.broker.server import Broker
    from queuehall.broker.storage import load_hall, open_store

    from queuehall.client import BrokerClient
    from queuehall.clock import SimulatedClock
    from queuehall.simulation import install_demo_pins

    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{tmp}/hall.db")
        config = hall_config(200, "hall")
        install_demo_pins(store, config, {c.id: PIN for c in config.clerks})
        broker = Broker(load_hall(config, SimulatedClock(sim_start(time.time()), 1.0), store), port=free_port())
        broker.bind()
        thread = threading.Thread(target=broker.serve_forever, daemon=True)
        thread.start()
        ctx = zmq.Context.instance()
        sub = ctx.socket(zmq.SUB)
        sub.linger = 0
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(f"tcp://127.0.0.1:{broker.port + 1}")
        client = BrokerClient(f"127.0.0.1:{broker.port}", timeout=10)
        try:
            if not sub.poll(5000):  # a heartbeat: the subscription is live
                raise RuntimeError("no heartbeat from the broker")
            service = next(iter(broker.hall.counter_config[1].services))
            client.request("take_ticket", service=service)
            client.request("sign_in", counter=1, clerk="a1", pin=PIN)
            client.request("call_next", counter=1)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if not sub.poll(1000):
                    continue
                _topic, msg = decode_publication(sub.recv_multipart())
                if (msg.get("event") or {}).get("type") == "ticket_called":
                    return {k: v for k, v in msg.items() if k not in ("v", "time")}
            raise RuntimeError("no ticket_called publication")
        finally:
            client.close()
            sub.close(0)
            broker.stop_event.set()
            thread.join(5)
            store.close()


def subscriber(port: int, mode: str, nice: int, stop: Any, out: Any, name: str) -> None:
    """One subscriber process: records the receipt time of each event by its sequence number."""
    os.nice(nice)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    received: dict[int, float] = {}
    first: list[Any] = []  # os.times() at the first event: start-up is not the receiving's cost
    if mode == "bare":
        import orjson

        sock = zmq.Context.instance().socket(zmq.SUB)
        sock.linger = 0
        sock.setsockopt(zmq.SUBSCRIBE, TOPIC_EVENT)
        sock.connect(f"tcp://127.0.0.1:{port + 1}")
        sock.rcvtimeo = 100
        out.put(("ready", name))
        while not stop.is_set():
            try:
                frames = sock.recv_multipart()
            except zmq.Again:
                continue
            t = time.monotonic()
            received[int(orjson.loads(frames[1])["seq"])] = t
            if not first:
                first.append(os.times())
        sock.close(0)
    else:
        from queuehall.client import Link

        link = Link(f"127.0.0.1:{port}", role="display", name=name, client_id=name)

        def on_event(msg: dict[str, Any]) -> None:
            received[int(msg["seq"])] = time.monotonic()
            if not first:
                first.append(os.times())

        link.on_event = on_event
        link.on_state = lambda mirror: out.put(("ready", name)) if mirror.synced and not received else None
        link.start()
        stop.wait()
        link.stop()
    end = os.times()
    cpu = (end.user + end.system) - (first[0].user + first[0].system) if first else 0.0
    out.put(("done", name, received, cpu))


def run(k: int, mode: str, body: dict[str, Any], messages: int, gap: float, nice: int) -> dict[str, Any]:
    """Publish ``messages`` copies of ``body`` to ``k`` subscribers of ``mode``; their latencies."""
    ctx = zmq.Context.instance()
    port = free_port()
    router, pub = ctx.socket(zmq.ROUTER), ctx.socket(zmq.PUB)
    for s in (router, pub):
        s.linger = 0
    router.bind(f"tcp://127.0.0.1:{port}")
    pub.bind(f"tcp://127.0.0.1:{port + 1}")
    spawn = mp.get_context("spawn")
    stop, out = spawn.Event(), spawn.Queue()
    procs = [spawn.Process(target=subscriber, args=(port, mode, nice, stop, out, f"sub-{i}"), daemon=True)
             for i in range(k)]
    for p in procs:
        p.start()
    seq = 0

    def serve() -> None:  # the Links' hello, ping and snapshot
        while router.poll(0):
            ident, frame = router.recv_multipart()
            req = decode_request(frame)
            result = ({"epoch": EPOCH, "seq": seq, "state": {"services": {}, "counters": {}, "tickets": {}}}
                      if req.type == "snapshot" else {"epoch": EPOCH, "seq": seq, "client": req.client})
            router.send_multipart([ident, encode_reply(ok_reply(req.type, req.id, result))])

    def beat() -> None:
        pub.send_multipart(encode_publication(TOPIC_HEARTBEAT, {"type": "heartbeat", "epoch": EPOCH, "seq": seq}))

    ready: set[str] = set()
    deadline = time.monotonic() + 60
    while len(ready) < k:  # every subscriber connected (and a Link synchronised)
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(ready)} of {k} subscribers ready")
        serve()
        beat()
        time.sleep(0.05)
        while not out.empty():
            ready.add(out.get()[1])
    for _ in range(10):  # a bare SUB is ready when connected; let its subscription arrive
        serve()
        beat()
        time.sleep(0.05)
    sent: dict[int, float] = {}
    next_beat = time.monotonic() + 1
    for _ in range(messages):
        serve()
        seq += 1
        frames = encode_publication(TOPIC_EVENT, {**body, "epoch": EPOCH, "seq": seq})
        sent[seq] = time.monotonic()
        pub.send_multipart(frames)
        if time.monotonic() >= next_beat:
            beat()
            next_beat += 1
        time.sleep(gap)
    time.sleep(0.3)
    stop.set()
    results: list[tuple[dict[int, float], float]] = []
    while len(results) < k:
        msg = out.get(timeout=30)
        if msg[0] == "done":
            results.append((msg[2], msg[3]))
    for p in procs:
        p.join(10)
    router.close(0)
    pub.close(0)
    pairs = [(r[s] - t) * 1000 for s, t in sent.items() for r, _cpu in results if s in r]
    last = [max((r[s] - t) * 1000 for r, _cpu in results if s in r) for s, t in sent.items()
            if any(s in r for r, _cpu in results)]
    missing = len(sent) * k - len(pairs)
    return {"subscribers": k, "mode": mode, "messages": messages, "missing_pairs": missing,
            "latency_ms": summary(pairs), "last_of_k_ms": summary(last),
            "cpu_ms_per_message": round(1000 * sum(c for _r, c in results) / max(1, len(pairs) - k), 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subscribers", type=int, nargs="+", default=[1, 22])
    ap.add_argument("--modes", nargs="+", default=["bare", "link"], choices=["bare", "link"])
    ap.add_argument("--messages", type=int, default=200)
    ap.add_argument("--gap", type=float, default=0.1, help="seconds between messages")
    ap.add_argument("--nice", type=int, default=10)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # broker_bench, for the hall it uses
    started = time.time()
    body = capture_call_event()
    event_bytes = len(encode_publication(TOPIC_EVENT, {**body, "epoch": EPOCH, "seq": 1})[1])
    runs = [run(k, mode, body, args.messages, args.gap, args.nice) for k in args.subscribers for mode in args.modes]
    print(json.dumps({"benchmark": "fanout_floor", "machine": benchlib.machine(),
                      "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
                      "event_bytes": event_bytes, "gap_s": args.gap, "nice": args.nice, "runs": runs,
                      "total_seconds": round(time.time() - started, 1)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
