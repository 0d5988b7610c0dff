"""The counter screen as the counter's evaluator (窗口评价器, docs/evaluation.md): the state of one rating.

Pure Python (no Qt): :class:`EvaluatorModel` follows the counter's events, knows which visit is being rated
and what the citizen chose, builds the ``rate`` command and times out back to the normal screen.
display/evaluator_widget.py draws it.

States: ``idle`` (the normal counter screen), ``levels`` (the five levels, after a finish at this counter),
``details`` (for 不满意/非常不满意: the indicators and an optional reason), ``sending``, ``done`` (thanks, or
the broker's refusal, for a few seconds).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from queuehall.ratings import LOW_LEVELS
from queuehall.text import EMPTY, Bi

IDLE, LEVELS, DETAILS, SENDING, DONE = "idle", "levels", "details", "sending", "done"
DEFAULT_SECONDS = 30.0  # the five buttons stay this long after a finish (and after each touch)
DONE_SECONDS = 4.0  # the thanks (or the refusal) stays this long

# The five official levels (best first) and the indicators of a low rating: the one catalogue (queuehall/ratings.py).
LOW = LOW_LEVELS


@dataclass
class EvaluatorModel:
    """One counter screen's rating of the visit just finished there.

    ``send(type, **args) -> request id`` sends a command (the screen's QtLink); the reply comes back
    through :meth:`replied`. ``clock`` is monotonic seconds (tests inject theirs).
    """

    counter: int
    send: Callable[..., str]
    seconds: float = DEFAULT_SECONDS
    clock: Callable[[], float] = time.monotonic
    state: str = IDLE
    ticket_id: int | None = None
    label: str = ""
    level: int | None = None
    indicators: list[str] = field(default_factory=list)
    reason: str = ""
    message: Bi = EMPTY
    request_id: str | None = None
    deadline: float = 0.0

    # -- from the broker ---------------------------------------------------------------------------

    def on_event(self, msg: dict[str, Any]) -> bool:
        """Follow one published event (the message ``{"event": {...}, ...}``, or the event itself); True when
        the evaluator's state changed.

        A finish at this counter starts a rating of that ticket's visit; the next call at this counter ends
        an unfinished one (the next citizen is coming); a rating of the same ticket from another channel
        (the phone page, the box) ends it too."""
        ev = msg["event"] if isinstance(msg.get("event"), dict) else msg
        kind = ev.get("type")
        if ev.get("counter") != self.counter:
            return False
        found = ev.get("ticket")
        ticket: dict[str, Any] = found if isinstance(found, dict) else {}
        if kind == "ticket_finished" and isinstance(ticket.get("id"), int):
            self._start(ticket["id"], str(ticket.get("label", "")))
            return True
        if kind == "ticket_called" and self.state in (LEVELS, DETAILS):
            self.reset()
            return True
        if kind == "visit_rated" and ev.get("ticket_id") == self.ticket_id and self.state in (LEVELS, DETAILS):
            self._done(Bi("已收到您的评价，谢谢！", "Your rating was received. Thank you!"))
            return True
        return False

    def replied(self, request_id: str, reply: dict[str, Any]) -> bool:
        """The broker's answer to the ``rate`` this screen sent; True when it was ours."""
        if request_id != self.request_id or self.state != SENDING:
            return False
        self.request_id = None
        if reply.get("status") == "ok":
            self._done(Bi("感谢您的评价！", "Thank you for your rating!"))
        elif reply.get("status") == "error":
            err = reply.get("error") or {}
            self._done(Bi(str(err.get("message_zh", "评价未能提交")), str(err.get("message_en", "Not sent"))))
        else:  # the broker did not answer: the same request id may be sent again
            self._done(Bi("暂时无法提交评价，请稍后在手机上评价",
                          "Could not send the rating; please rate on your phone"))
        return True

    # -- from the citizen --------------------------------------------------------------------------

    def choose(self, level: int) -> None:
        """A level was touched: a low level asks for the details, any other is sent at once."""
        if self.state not in (LEVELS, DETAILS):
            return
        self.level = level
        if level in LOW:
            self.state = DETAILS
            self._touch()
        else:
            self.indicators, self.reason = [], ""
            self.submit()

    def toggle(self, indicator: str) -> None:
        """An indicator was touched (details only)."""
        if self.state != DETAILS:
            return
        if indicator in self.indicators:
            self.indicators.remove(indicator)
        else:
            self.indicators.append(indicator)
        self._touch()

    def set_reason(self, text: str) -> None:
        self.reason = text[:200]
        self._touch()

    def back(self) -> None:
        """From the details back to the five levels."""
        if self.state == DETAILS:
            self.state, self.level, self.indicators, self.reason = LEVELS, None, [], ""
            self._touch()

    def submit(self) -> None:
        """Send the rating (``rate``, channel ``counter_screen``, for this counter's visit of the ticket)."""
        if self.state not in (LEVELS, DETAILS) or self.level is None or self.ticket_id is None:
            return
        args: dict[str, Any] = {"counter": self.counter, "ticket": str(self.ticket_id), "level": self.level,
                                "channel": "counter_screen"}
        if self.level in LOW:
            if self.indicators:
                args["indicators"] = ",".join(self.indicators)
            if self.reason.strip():
                args["reason"] = self.reason.strip()
        self.state = SENDING
        self.request_id = self.send("rate", **args)
        self.deadline = self.clock() + self.seconds

    # -- time ----------------------------------------------------------------------------------------

    def tick(self) -> bool:
        """Time out back to the normal screen; True when the state changed."""
        if self.state != IDLE and self.clock() >= self.deadline:
            self.reset()
            return True
        return False

    def remaining(self) -> int:
        """Whole seconds left before the screen goes back (shown as a countdown)."""
        return max(0, int(self.deadline - self.clock() + 0.999))

    def reset(self) -> None:
        self.state, self.ticket_id, self.label, self.level = IDLE, None, "", None
        self.indicators, self.reason, self.message, self.request_id = [], "", EMPTY, None

    def _start(self, ticket_id: int, label: str) -> None:
        self.reset()
        self.state, self.ticket_id, self.label = LEVELS, ticket_id, label
        self._touch()

    def _done(self, message: Bi) -> None:
        self.state, self.message = DONE, message
        self.deadline = self.clock() + DONE_SECONDS

    def _touch(self) -> None:
        self.deadline = self.clock() + self.seconds
