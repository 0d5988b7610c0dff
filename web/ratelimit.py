"""Rate limits of the REST API: a token bucket per API token and one per client address.

Each bucket holds up to ``burst`` requests and refills at ``rate`` requests a second. A request
takes one from its address's bucket and, when it carries a token, one from that token's bucket;
if either is empty it is answered ``429 Too Many Requests`` with ``Retry-After`` (whole seconds)
and the bilingual error ``RATE_LIMITED`` (docs/web.md). The token's bucket is keyed by its public
id (``qh_<id>_…``) whether or not the token is valid, so made-up tokens only spend their own
address's budget as well.

Time comes from an injected monotonic clock (``clock()`` in seconds), so the tests never sleep.
Memory is bounded: past ``max_keys`` buckets, those that have refilled completely (their owner
has been idle) are dropped; they would behave exactly like a new full bucket.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson
from queuehall.web.apitokens import public_id

from queuehall.errors import HallError

Clock = Callable[[], float]


@dataclass(frozen=True)
class Limit:
    """``rate`` requests a second on average, bursts of up to ``burst``."""

    rate: float
    burst: float

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("a rate limit needs rate > 0 and burst >= 1")

    @classmethod
    def parse(cls, text: str) -> Limit:
        """``RATE/BURST`` as on the command line, e.g. ``20/40`` (20 a second, bursts of 40)."""
        rate, sep, burst = text.partition("/")
        try:
            return cls(float(rate), float(burst) if sep else max(1.0, float(rate)))
        except ValueError:
            raise ValueError(f"rate limit {text!r}: expected RATE/BURST, e.g. 20/40") from None


@dataclass(frozen=True)
class RateLimits:
    """The gateway's limits (``queuehall web --limit-token``, ``--limit-address``)."""

    per_token: Limit = Limit(20.0, 40.0)
    per_address: Limit = Limit(50.0, 100.0)


class Buckets:
    """Token buckets by key, on an injected clock."""

    def __init__(self, limit: Limit, clock: Clock = time.monotonic, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str) -> float:
        """Take one request from ``key``'s bucket: 0.0 when allowed, else the seconds until it would be."""
        now = self.clock()
        rate, burst = self.limit.rate, self.limit.burst
        tokens, at = self._buckets.get(key, (burst, now))
        tokens = min(burst, tokens + (now - at) * rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > self.max_keys:
                self._prune(now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / rate

    def give_back(self, key: str) -> None:
        """Return one request to ``key``'s bucket (taken for a request another limit then refused)."""
        if key in self._buckets:
            tokens, at = self._buckets[key]
            self._buckets[key] = (min(self.limit.burst, tokens + 1.0), at)

    def _prune(self, now: float) -> None:
        rate, burst = self.limit.rate, self.limit.burst
        for key in [k for k, (tokens, at) in self._buckets.items() if tokens + (now - at) * rate >= burst]:
            del self._buckets[key]


class RateLimiter:
    """Both limits together: an address's bucket, then the token's (only when both have room is either spent)."""

    def __init__(self, limits: RateLimits = RateLimits(), clock: Clock = time.monotonic,
                 max_keys: int = 100_000) -> None:
        self.limits = limits
        self.by_address = Buckets(limits.per_address, clock, max_keys)
        self.by_token = Buckets(limits.per_token, clock, max_keys)

    def check(self, address: str, token_id: str | None) -> float:
        """0.0 if the request may go on, else the seconds to wait (for ``Retry-After``)."""
        wait = self.by_address.take(address)
        if wait:
            return wait
        if token_id is not None:
            wait = self.by_token.take(token_id)
            if wait:
                # Refused: give the address its request back, so a client over its token's limit is held
                # back by that limit alone.
                self.by_address.give_back(address)
        return wait


def retry_after(wait: float) -> int:
    """Whole seconds for ``Retry-After``: never 0 (a client told 0 would retry at once)."""
    return max(1, math.ceil(wait))


def rate_limited_body(wait: float) -> bytes:
    """The 429 body: the protocol's error shape with the stable code ``RATE_LIMITED``."""
    err = HallError("RATE_LIMITED", retry_after=retry_after(wait))
    return orjson.dumps({"status": "error", "error": err.to_dict()})


def bearer(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The token of an ``Authorization: Bearer …`` header among raw ASGI headers, or None."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, rest = value.decode("latin-1").partition(" ")
            return rest.strip() if scheme.lower() == "bearer" else None
    return None


ASGIApp = Callable[[MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
                   Awaitable[None]]


class RateLimitMiddleware:
    """ASGI middleware limiting HTTP requests under ``prefix`` (default ``/api/``) per address and token.

    The client address is the ASGI peer (``scope["client"]``); behind a reverse proxy give the
    gateway ``--forwarded-allow-ips`` so uvicorn puts the real client there.

    Ticket pages' event streams (``GET …/events`` without a token) are not limited: a hall's phones
    often share one address (the hall's Wi-Fi), and after a gateway restart they all reconnect at once;
    a browser's EventSource gives up for good on a 429. The gateway bounds open streams itself
    (``--max-streams``).
    """

    def __init__(self, app: ASGIApp, limiter: RateLimiter, prefix: str = "/api/") -> None:
        self.app = app
        self.limiter = limiter
        self.prefix = prefix

    async def __call__(self, scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        path, root = scope.get("path", ""), scope.get("root_path", "")
        if root and path.startswith(root):  # a hall's prefix /h/<hall> (web/halls.py) is not part of the route
            path = path[len(root):]
        if scope["type"] != "http" or not path.startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else "unknown"
        presented = bearer(scope.get("headers") or [])
        if presented is None and scope.get("method") == "GET" and path.endswith("/events"):
            await self.app(scope, receive, send)
            return
        wait = self.limiter.check(address, public_id(presented) if presented else None)
        if not wait:
            await self.app(scope, receive, send)
            return
        body = rate_limited_body(wait)
        await send({"type": "http.response.start", "status": 429, "headers": [
            (b"content-type", b"application/json; charset=utf-8"), (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(retry_after(wait)).encode())]})
        await send({"type": "http.response.body", "body": body})
