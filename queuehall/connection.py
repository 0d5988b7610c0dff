"""The connection to the broker as every screen shows it: one model, one vocabulary.

A screen's link (:class:`~queuehall.client.Link`) reports the broker alive or silent, and hands over the hall state
after a snapshot or an event. :class:`LinkStatus` turns those into what the kiosk, the counter and the wall display
all show:

* ``connecting`` — no hall state from the broker yet (since the screen started): nothing to show;
* ``online`` — the broker answers;
* ``offline`` — it answered before and is silent now: what is shown is from before the loss.

``stale`` says the state on screen is older than the broker's: from the loss until a fresh snapshot arrived (a
link back up but not resynchronised yet is still stale). ``lost_at`` is the hall time of the loss.

Pure Python (core layer): no sockets, no Qt.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from queuehall.text import Bi

CONNECTING, ONLINE, OFFLINE = "connecting", "online", "offline"
LABELS = {ONLINE: Bi("已连接", "Online"), OFFLINE: Bi("连接中断", "Offline"), CONNECTING: Bi("正在连接", "Connecting")}


class LinkStatus:
    """The broker connection of one screen (see the module docstring). ``clock`` gives the hall's time for
    :attr:`lost_at` (None: the loss is not timed)."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.clock = clock
        self.up: bool | None = None  # None: never heard from the broker
        self.synced = False  # a state arrived since the link was last lost
        self.ever_synced = False
        self.lost_at: datetime | None = None

    def on_connection(self, up: bool) -> bool:
        """The link found the broker alive (True) or silent (False); returns whether that changed anything."""
        if up == self.up:
            return False
        self.up = up
        if not up:
            self.synced = False  # whatever is shown is from before the loss until a new state arrives
            self.lost_at = self.clock() if self.clock is not None else None
        return True

    def on_state(self) -> None:
        """A snapshot or an event arrived: the broker is there and what is shown is current."""
        self.up = True
        self.synced = True
        self.ever_synced = True

    @property
    def state(self) -> str:
        """``connecting``, ``online`` or ``offline``."""
        if not self.ever_synced:
            return CONNECTING
        return ONLINE if self.up else OFFLINE

    @property
    def connected(self) -> bool:
        """The broker is reachable now."""
        return bool(self.up)

    @property
    def stale(self) -> bool:
        """What is shown is older than the broker's state (lost, or back but not resynchronised)."""
        return self.ever_synced and (self.up is False or not self.synced)

    @property
    def label(self) -> Bi:
        """The indicator's word in both languages."""
        return LABELS[self.state]
