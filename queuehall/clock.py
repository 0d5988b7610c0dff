"""Clocks. Every component takes a clock so tests and the simulated hall never sleep.

A clock returns an aware UTC ``datetime``; times are stored in UTC and shown in the
hall's time zone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, aware, in UTC."""
        ...


class SystemClock:
    """Real time."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to (tests)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float = 0, **kw: float) -> datetime:
        self._now += timedelta(seconds=seconds, **kw)
        return self._now

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("set() needs an aware datetime")
        self._now = when.astimezone(UTC)


class SimulatedClock:
    """Starts at ``start`` and runs ``speed`` times faster than real time (demo, training)."""

    def __init__(self, start: datetime, speed: float = 1.0) -> None:
        if start.tzinfo is None:
            raise ValueError("SimulatedClock needs an aware datetime")
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._start = start.astimezone(UTC)
        self._speed = speed
        self._t0 = time.monotonic()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=(time.monotonic() - self._t0) * self._speed)


def _system_now() -> datetime:
    return datetime.now(UTC)


class HallClock:
    """The hall's time as the broker tells it, carried forward on this machine's monotonic clock.

    Every screen takes "now" from here, never from its PC's clock, which may be off by hours or
    days (and under ``--sim-start`` the hall's time is another day altogether). :meth:`observe`
    takes each time the broker reports: the snapshot's ``state["now"]`` and every heartbeat's
    ``now`` (at least once a second); between them the local monotonic clock advances it, so
    changing the PC's clock changes nothing. Before the first report it is ``fallback`` (the
    system time): a screen shows nothing of the hall before its first snapshot anyway.
    Thread-safe: the link thread observes, the GUI thread reads. Call it or use :meth:`now`
    (it is a :class:`Clock`).
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic,
                 fallback: Callable[[], datetime] = _system_now) -> None:
        self._monotonic = monotonic
        self._fallback = fallback
        self._anchor: tuple[datetime, float] | None = None  # replaced whole: safe across threads
        self._lock = threading.Lock()

    @property
    def source(self) -> str:
        """``"broker"`` once the broker's time is known, else ``"system"``."""
        return "broker" if self._anchor is not None else "system"

    def observe(self, now: datetime | str | None) -> None:
        """Take ``now`` (aware datetime or ISO string, ``…Z``) as the hall time at this instant; junk is ignored."""
        at: datetime | None
        if isinstance(now, str):
            from queuehall.protocol import parse_time  # the wire's one parser (core, as this module)

            at = parse_time(now)
        else:
            at = now if isinstance(now, datetime) else None
        if at is None or at.tzinfo is None:
            return
        with self._lock:
            self._anchor = (at.astimezone(UTC), self._monotonic())

    def now(self) -> datetime:
        """The hall's current time, aware, in UTC."""
        anchor = self._anchor
        if anchor is None:
            return self._fallback().astimezone(UTC)
        at, mono = anchor
        return at + timedelta(seconds=max(0.0, self._monotonic() - mono))

    def __call__(self) -> datetime:
        return self.now()
