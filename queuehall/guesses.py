"""The brake on guessing booking codes (docs/calling-rules.md "Guessing codes"), pure Python.

The broker brakes each device it knows (a kiosk, a counter, a command line client); the web gateway is one
device to the broker but stands for every citizen on the internet, so it brakes each citizen's address itself
with the same rule (web/rest.py), and the broker does not brake it: one guesser on the web must not stop
everyone's booking pages.
"""

from __future__ import annotations

import math
from collections import deque
from datetime import datetime, timedelta

# Wrong codes a device (at the gateway: an address) may give in a minute, unless the hall says otherwise
# ([appointments] wrong_codes_per_minute; the gateway's --wrong-codes).
DEFAULT_WRONG_CODES_PER_MINUTE = 10
# The commands that name a booking by its code.
CODE_COMMANDS = frozenset({"checkin", "unbook", "booking"})

# What a guess at a booking code gets when it could have been one: a well-formed code of this hall (check
# character and hall tag right, as anyone who read this file can make them) that names no booking. A code typed
# wrong (BOOKING_CODE_INVALID) or another hall's (BOOKING_WRONG_HALL) is refused before any lookup and tells
# nothing about the bookings held, so it is not counted: a citizen's typos at the kiosk, or a city gateway asking
# every hall where a code belongs (web/halls.py), must not stop a device.
WRONG_CODE_ERRORS = frozenset({"BOOKING_NOT_FOUND"})
WRONG_CODES_WINDOW = timedelta(minutes=1)


class WrongCodes:
    """The brake on guessing booking codes: the wrong codes (:data:`WRONG_CODE_ERRORS`) each device (a kiosk,
    a counter, a command line client; at the web gateway, each client address) gave in the last minute
    (docs/calling-rules.md "Appointments", "Guessing codes").

    A device that gave ``per_minute`` wrong codes within a minute is refused every code (``BOOKING_CODE_LIMIT``,
    nothing looked up) until the first of them is a minute old. Kept in memory (by the broker, or the gateway):
    a restart forgets it (at most ``per_minute`` more guesses per device and restart). Times come from the
    caller's clock.
    """

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._wrong: dict[str, deque[datetime]] = {}  # device -> its last wrong codes' times (at most per_minute)

    def wait_seconds(self, device: str, now: datetime) -> int:
        """0 when ``device`` may give a code now; else the whole seconds until it may."""
        times = self._wrong.get(device)
        if times is None:
            return 0
        while times and times[0] + WRONG_CODES_WINDOW <= now:
            times.popleft()
        if not times:
            del self._wrong[device]
            return 0
        if len(times) < self.per_minute:
            return 0
        return max(1, math.ceil((times[0] + WRONG_CODES_WINDOW - now).total_seconds()))

    def wrong(self, device: str, now: datetime) -> None:
        """``device`` gave a wrong code at ``now``."""
        if len(self._wrong) > 10_000:  # client ids without device keys are the caller's to choose: stay small
            for key in [k for k, t in self._wrong.items() if not t or t[-1] + WRONG_CODES_WINDOW <= now]:
                del self._wrong[key]
        times = self._wrong.setdefault(device, deque(maxlen=self.per_minute))
        times.append(now)
