"""The tests' checks on the broker and the engine, registered by tests/conftest.py: on every publication of an
in-process broker (``queuehall.broker.server.PUBLICATION_CHECKS``), the engine marked every service and counter whose
record changed, since the broker rebuilds and publishes only those; at every "call next"
(``queuehall.broker.engine.PICK_CHECKS``), the queue index found the candidates the slow way finds."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

# A service summary's time-driven fields: the heartbeat's to publish, not a command's.
TIME_DRIVEN = frozenset({"next_open", "issue_state", "issued_today", "session_ends"})


def dirty_mark_check(misses: list[str]) -> Callable[[Any, datetime, dict[str, Any], dict[str, Any]], None]:
    """A publication check that appends to ``misses`` each service (``"service CODE"``) and counter
    (``"counter N"``) whose record differs from what the screens were last sent without having been rebuilt."""

    def check(broker: Any, now: datetime, summaries: dict[str, Any], counters: dict[str, Any]) -> None:
        hall = broker.hall
        last_summaries, last_counters = broker.published()
        for s in hall.config.services:
            if s.code in summaries:
                continue
            fresh, last = ({k: v for k, v in x.items() if k not in TIME_DRIVEN}
                           for x in (hall.service_summary(s, now), last_summaries.get(s.code, {})))
            if fresh != last:
                misses.append(f"service {s.code}")
        for n in hall.counter_config:
            if str(n) not in counters and hall.counter_public(n) != last_counters.get(str(n)):
                misses.append(f"counter {n}")

    return check


def index_check(hall: Any, tx: Any, counter: int, found: Any, oldest: Any, tickets_of: Any) -> None:
    """A pick check: the candidates the queue index found at ``counter`` are those found from every ticket."""
    slow = hall._candidates_changed(tx, counter)
    if (set(found), oldest and oldest.id) != (set(slow[0]), slow[1] and slow[1].id) or any(
            {t.id for t in tickets_of(c)} != {t.id for t in slow[2](c)} for c in slow[0]):
        raise AssertionError(f"the queue index disagrees with the tickets at counter {counter}")
