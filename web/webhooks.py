"""Webhooks: the broker's events as signed POSTs to subscribers, at least once, in order per subscriber.

Three parts, each usable alone (docs/web.md, "Webhooks"):

* :class:`EventFeed` moves the broker's journaled events into the :class:`~queuehall.web.outbox.Outbox`
  in ``journal_seq`` order, each once: live events as they are published, and whatever it missed
  (the gateway was down, a publication was lost) from the broker's journal with the ``events``
  request, starting at the outbox's cursor. What the journal no longer has becomes a gap record.
* :class:`DeliveryWorker` sends each subscriber's deliveries one after the other (asyncio, httpx):
  a 2xx marks it delivered; anything else (an error status, a refused connection, a time-out)
  schedules the same delivery again after an exponential back-off with jitter (:class:`RetryPolicy`),
  and the subscriber's later deliveries wait behind it. Other subscribers are not held up.
* :class:`WebhookService` runs both for the gateway (``queuehall web``) or alone
  (``queuehall web-hook run``): a :class:`~queuehall.client.Link` for the live events, a thread for
  the feed and a thread with its own event loop for the deliveries.

Every request carries ``X-Queuehall-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``
(:func:`sign`; a receiver checks it with :func:`verify_signature` and rejects old timestamps),
``X-Queuehall-Delivery`` (the delivery id, the same on every retry: the receiver's de-duplication
key) and ``X-Queuehall-Event`` (the event type).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import logging
import queue
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from queuehall.web.outbox import CLAIM_SECONDS, Delivery, Outbox, Subscriber

log = logging.getLogger("queuehall.web.webhooks")

SIGNATURE_HEADER = "X-Queuehall-Signature"
DELIVERY_HEADER = "X-Queuehall-Delivery"
EVENT_HEADER = "X-Queuehall-Event"
ATTEMPT_HEADER = "X-Queuehall-Attempt"
SIGNATURE_TOLERANCE = 300  # seconds a receiver should accept between the signature's time and its clock
CATCH_UP_SECONDS = 2.0  # the feed asks the broker's journal for anything missed at least this often
SUBSCRIBERS_SECONDS = 2.0  # the worker re-reads the subscribers (the CLI may add or remove one) this often
PRUNE_SECONDS = 3600.0


# ---------------------------------------------------------------------------------------------- signatures


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Queuehall-Signature`` value for ``body`` sent at ``timestamp`` (Unix seconds)."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(secret: str, header: str | None, body: bytes, *, now: float | None = None,
                     tolerance: float = SIGNATURE_TOLERANCE) -> bool:
    """What a receiver does: the header's ``v1`` must be the HMAC of ``"<t>." + body`` under the shared
    secret (compared in constant time), and ``t`` within ``tolerance`` seconds of ``now`` (replays of
    an old delivery are refused)."""
    if not header:
        return False
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(parts.get("t", ""))
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - t) > tolerance:
        return False
    expected = sign(secret, t, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


# ---------------------------------------------------------------------------------------------- back-off


@dataclass(frozen=True)
class RetryPolicy:
    """Delay before attempt ``n + 1`` after ``n`` failed ones: ``base * 2**(n-1)``, at most ``cap``
    seconds, less a random part of up to ``jitter`` of it (so receivers coming back are not hit by every
    gateway at once). Deliveries are never given up: a receiver down for hours gets them when it is back
    (within ``cap`` seconds of its return)."""

    base: float = 1.0
    cap: float = 60.0
    jitter: float = 0.2

    def delay(self, failures: int, rng: Callable[[], float] = random.random) -> float:
        raw = min(self.cap, self.base * 2 ** max(0, failures - 1))
        return raw * (1.0 - self.jitter * rng())


def _retry_after(resp: httpx.Response | None, now: float) -> float | None:
    """Seconds a 429/503 receiver asked for with ``Retry-After`` (seconds or an HTTP date), if any."""
    value = resp.headers.get("retry-after") if resp is not None else None
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    with contextlib.suppress(TypeError, ValueError):
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    return None


# ---------------------------------------------------------------------------------------------- deliveries


class DeliveryWorker:
    """Sends the outbox's deliveries: one task per subscriber, each strictly in order."""

    def __init__(self, outbox: Outbox, *, policy: RetryPolicy = RetryPolicy(),
                 clock: Callable[[], float] = time.time, rng: Callable[[], float] = random.random,
                 timeout: float = 10.0, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.outbox = outbox
        self.policy = policy
        self.clock = clock
        self.rng = rng
        self.timeout = timeout
        self.transport = transport
        self.client: httpx.AsyncClient | None = None
        self.delivered = 0  # successful deliveries since start (benchmarks, diagnostics)
        self.failed = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: dict[int, asyncio.Event] = {}

    def notify(self) -> None:
        """New deliveries were enqueued (call from any thread): wake the subscribers' tasks."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop just stopped
                loop.call_soon_threadsafe(self._wake_all)

    def _wake_all(self) -> None:
        for ev in self._wake.values():
            ev.set()

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.client is None:
            self.client = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout, connect=min(5.0, self.timeout)),
                                            transport=self.transport, follow_redirects=False,
                                            headers={"User-Agent": "queuehall-webhooks/1"})

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set. An attempt cut short by stopping is made again on the next run."""
        await self.open()
        tasks: dict[int, asyncio.Task[None]] = {}
        last_prune = 0.0
        try:
            while not stop.is_set():
                live = {s.id: s for s in await asyncio.to_thread(self.outbox.subscribers)}
                for sid in [sid for sid in tasks if sid not in live or tasks[sid].done()]:
                    tasks.pop(sid).cancel()
                    self._wake.pop(sid, None)
                for sid, sub in live.items():
                    if sid not in tasks:
                        self._wake[sid] = asyncio.Event()
                        tasks[sid] = asyncio.create_task(self._serve(sub), name=f"webhook-{sid}")
                if self.clock() - last_prune > PRUNE_SECONDS:
                    last_prune = self.clock()
                    await asyncio.to_thread(self.outbox.prune)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), SUBSCRIBERS_SECONDS)
        finally:
            for t in tasks.values():
                t.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)
            await self.close()

    async def _serve(self, sub: Subscriber) -> None:
        wake = self._wake[sub.id]
        while True:
            wake.clear()
            d = await asyncio.to_thread(self.outbox.next_pending, sub.id)
            wait = 1.0 if d is None else d.next_at - self.clock()
            if d is not None and d.claimed_until is not None and d.claimed_by != self.outbox.owner:
                wait = max(wait, min(d.claimed_until - self.clock(), 1.0))  # another gateway is sending it
            if wait > 0:
                # Woken early by new deliveries (which cannot overtake a waiting head: they queue behind it).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), min(wait, 1.0))
                continue
            assert d is not None
            # Another gateway on the same state may be sending it: it is this one's only once claimed.
            if not await asyncio.to_thread(self.outbox.claim, d.id, self.clock() + CLAIM_SECONDS):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), 1.0)
                continue
            try:
                await self.attempt(sub, d)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not stop this subscriber's deliveries for good
                log.exception("webhook delivery %s to %s failed unexpectedly", d.id, sub.url)
                await asyncio.sleep(1.0)

    async def attempt(self, sub: Subscriber, d: Delivery) -> bool:
        """Send one delivery once; record the outcome (delivered, or failed with its next attempt time)."""
        if self.client is None:
            await self.open()
        assert self.client is not None
        now = self.clock()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(sub.secret, int(now), d.body),
                   DELIVERY_HEADER: d.id, EVENT_HEADER: d.type, ATTEMPT_HEADER: str(d.attempts + 1)}
        resp: httpx.Response | None = None
        try:
            resp = await self.client.post(sub.url, content=d.body, headers=headers)
            ok, status, error = 200 <= resp.status_code < 300, resp.status_code, f"HTTP {resp.status_code}"
        except httpx.HTTPError as exc:
            ok, status, error = False, None, f"{type(exc).__name__}: {exc}"[:300]
        if ok and status is not None:  # ok comes only with a response, so with its status
            await asyncio.to_thread(self.outbox.mark_delivered, d.id, status)
            self.delivered += 1
            return True
        self.failed += 1
        delay = self.policy.delay(d.attempts + 1, self.rng)
        asked = _retry_after(resp, now) if status in (429, 503) else None
        if asked is not None:
            delay = min(self.policy.cap, max(delay, asked))
        if d.attempts == 0 or (d.attempts + 1) % 10 == 0:  # the first failure and then every tenth are logged
            log.warning("webhook %s (%s): delivery %s failed (%s), attempt %d; next in %.1f s", sub.name, sub.url,
                        d.id, error, d.attempts + 1, delay)
        await asyncio.to_thread(self.outbox.mark_failed, d.id, self.clock() + delay, status, error)
        return False


# ---------------------------------------------------------------------------------------------- the feed

Fetch = Callable[[int, int], dict[str, Any]]  # (after journal_seq, limit) -> the broker's ``events`` result


class EventFeed:
    """Journaled broker events into the outbox, in ``journal_seq`` order, each once (see the module doc).

    ``fetch(after, limit)`` asks the broker's ``events`` request. ``on_enqueued()`` is called after
    deliveries were written (the worker's :meth:`DeliveryWorker.notify`). Not thread-safe: one thread
    calls :meth:`live` and :meth:`catch_up`.
    """

    def __init__(self, outbox: Outbox, fetch: Fetch, *, page: int = 500,
                 on_enqueued: Callable[[], None] = lambda: None) -> None:
        self.outbox = outbox
        self.fetch = fetch
        self.page = page
        self.on_enqueued = on_enqueued

    def start(self) -> int:
        """The cursor; a gateway meeting a broker for the first time starts at the broker's newest event
        (subscribers get what happens from now on, not the hall's whole history)."""
        cur = self.outbox.cursor()
        if cur is None:
            first = int(self.fetch(0, 0)["last_seq"])
            if self.outbox.enqueue([], cursor=first, after=None) is not None:
                log.info("webhooks start at the broker's journal_seq %d", first)
            cur = self.outbox.cursor()  # ours, or another gateway's that started first
            assert cur is not None
        return cur

    def live(self, event: dict[str, Any]) -> None:
        """An event as published (``msg["event"]``); events without ``journal_seq`` are not journaled: ignored."""
        jseq = event.get("journal_seq")
        if not isinstance(jseq, int):
            return
        cur = self.start()
        if jseq <= cur:
            return
        if jseq == cur + 1:
            self._enqueue([event], after=cur)  # not enqueued: another gateway on the same state did
            return
        self.catch_up()  # we missed some: the journal has them (and this one)
        cur = self.start()
        if jseq > cur:  # the journal did not have it yet (cannot happen with the broker's group commit)
            self._enqueue([event], gap=(cur + 1, jseq - 1, "missing from the broker's journal")
                          if jseq > cur + 1 else None, after=cur)

    def catch_up(self) -> int:
        """Enqueue everything the broker's journal has after the cursor; returns the events enqueued."""
        cur = self.start()
        total = 0
        while True:
            page = self.fetch(cur, self.page)
            last = int(page["last_seq"])
            events = sorted((e for e in page.get("events", []) if int(e["journal_seq"]) > cur),
                            key=lambda e: int(e["journal_seq"]))
            if last < cur:
                # A new database, or one restored from an older backup: its numbers are not ours.
                reason = (f"the broker's journal is at {last}, behind this gateway's {cur} (a new or restored "
                          f"database); continuing after {last}")
                if self.outbox.enqueue([], cursor=last, gap=(last + 1, cur, reason), after=cur) is None:
                    cur = self.start()  # another gateway on the same state moved the cursor: again from it
                    continue
                self._gap(last + 1, cur, reason)
                return total
            if not events:
                if last > cur:  # the broker has newer events it cannot give us
                    reason = ("the broker keeps no journal" if not page.get("journal", True)
                              else "no longer in the broker's journal")
                    if self.outbox.enqueue([], cursor=last, gap=(cur + 1, last, reason), after=cur) is None:
                        cur = self.start()
                        continue
                    self._gap(cur + 1, last, reason)
                return total
            first = int(events[0]["journal_seq"])
            gap = None
            if first > cur + 1:
                gap = (cur + 1, first - 1, "no longer in the broker's journal (purged)")
            if not self._enqueue(events, gap=gap, after=cur):
                cur = self.start()  # another gateway on the same state enqueued them: go on from its cursor
                continue
            if gap is not None:
                self._gap(*gap)
            total += len(events)
            cur = int(events[-1]["journal_seq"])
            if cur >= last:
                return total

    def _enqueue(self, events: list[dict[str, Any]], gap: tuple[int, int, str] | None = None, *,
                 after: int) -> bool:
        """Enqueue ``events`` following cursor ``after``; False when another gateway moved the cursor first."""
        written = self.outbox.enqueue(events, gap=gap, after=after)
        if written:
            self.on_enqueued()
        return written is not None

    @staticmethod
    def _gap(first: int, last: int, reason: str) -> None:
        log.error("webhooks: broker events %d..%d cannot be delivered: %s (recorded as a gap in the outbox)",
                  first, last, reason)


# ---------------------------------------------------------------------------------------------- the service


class WebhookService:
    """The feed and the worker, fed by a :class:`~queuehall.client.Link` to the broker (role ``web``).

    :meth:`start` returns at once; :meth:`stop` stops everything (an attempt in flight is made again
    on the next start, with the same delivery id).
    """

    def __init__(self, outbox: Outbox, endpoint: str | None, *, security: Any = None,
                 policy: RetryPolicy = RetryPolicy(), client_id: str = "webhooks") -> None:
        from queuehall.client import BrokerClient, Link

        self.outbox = outbox
        self.worker = DeliveryWorker(outbox, policy=policy)
        self.link = Link(endpoint, role="web", name="webhooks", security=security)
        self.broker = BrokerClient(endpoint, security=security, client_id=client_id, timeout=2.0, retries=1)
        self.feed = EventFeed(outbox, self._fetch, on_enqueued=self.worker.notify)
        self._inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_stop: asyncio.Event | None = None
        self.link.on_event = lambda msg: self._inbox.put(msg.get("event") or {})
        self.link.on_connection = lambda up: self._inbox.put(None) if up else None

    def _fetch(self, after: int, limit: int) -> dict[str, Any]:
        return self.broker.request("events", after=after, limit=limit)

    def start(self) -> None:
        self._stop.clear()
        ready = threading.Event()
        self._threads = [threading.Thread(target=self._deliver, args=(ready,), name="webhook-deliveries", daemon=True),
                         threading.Thread(target=self._feed, name="webhook-feed", daemon=True)]
        self._threads[0].start()
        ready.wait(5)
        self._threads[1].start()
        self.link.start()

    def stop(self) -> None:
        self._stop.set()
        self._inbox.put(None)
        self.link.stop()
        if self._loop is not None and self._loop_stop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._loop_stop.set)
        for t in self._threads:
            t.join(15)
        self.broker.close()

    def _deliver(self, ready: threading.Event) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._loop_stop = asyncio.Event()
            await self.worker.open()
            ready.set()
            await self.worker.run(self._loop_stop)

        asyncio.run(main())

    def _feed(self) -> None:
        from queuehall.client import BrokerUnavailable, CommandRefused

        while not self._stop.is_set():
            try:
                item = self._inbox.get(timeout=CATCH_UP_SECONDS)
            except queue.Empty:
                item = None
            if self._stop.is_set():
                return
            try:
                if item:
                    self.feed.live(item)
                else:
                    self.feed.catch_up()
            except BrokerUnavailable:
                log.info("webhooks: the broker does not answer; catching up when it does")
            except CommandRefused as err:
                log.error("webhooks: the broker refused to list its events: %s", err)
                self._stop.wait(CATCH_UP_SECONDS)
            except Exception:  # the feed must keep going: what it missed is fetched on the next round
                log.exception("webhooks: the event feed failed")
                self._stop.wait(CATCH_UP_SECONDS)


def run_standalone(args: argparse.Namespace) -> int:
    """``queuehall web-hook run``: the feed and the deliveries without the HTTP gateway, until SIGTERM/SIGINT."""
    from queuehall.web.state import state_path

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    security = None
    if args.key or args.server_key:
        from queuehall.client import Security

        if not (args.key and args.server_key):
            print("queuehall web-hook run: --key and --server-key go together", file=sys.stderr)
            return 2
        security = Security.from_files(args.key, args.server_key)
    outbox = Outbox(state_path(args.state))
    service = WebhookService(outbox, args.broker, security=security)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    service.start()
    print(f"queuehall web-hook worker ready (state {state_path(args.state)})", flush=True)
    done.wait()
    service.stop()
    outbox.close()
    return 0
