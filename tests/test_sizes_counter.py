"""The counter window at the sizes halls buy (issue 15): 1920×1080, 1366×768 and 1280×1024.

Each state a clerk sees (signed out, a queue waiting, a ticket being served with its checklist and two
no-shows, the transfer / call-a-ticket / reinstate dialogs, the broker gone) is laid out at each size in both
languages with the default hall and checked with :func:`tests.layout_check.layout_problems` (the queue's and
the lists' cells included); screenshots go to tests/artifacts/sizes/. At 1366×768 the queue shows at least
five rows.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from queuehall.broker.config import HallConfig

from queuehall.client import BrokerClient
from queuehall.clock import ManualClock
from tests.broker_fixtures import BrokerThread
from tests.layout_check import check, layout_problems, save, tag
from tests.test_counter_gui import clock, hall, kiosk, settle, sign_in, take, terminal  # noqa: F401  (fixtures)

COUNTER_SIZES = [(1920, 1080), (1366, 768), (1280, 1024)]


def visible_rows(table: Any) -> int:
    """How many whole rows of a table its viewport shows from the top (rows may differ in height)."""
    height = table.viewport().height()
    return sum(1 for row in range(table.rowCount())
               if table.rowViewportPosition(row) >= 0
               and table.rowViewportPosition(row) + table.rowHeight(row) <= height)


def dialogs(qtbot: Any, w: Any, t: str, actions: tuple[str, ...]) -> list[str]:
    """Open each dialog of ``actions``, check its layout (its lists' cells too), screenshot and close it."""
    problems: list[str] = []
    for action in actions:
        qtbot.waitUntil(lambda a=action: w.model.enabled(a), timeout=5000)
        w.trigger(action)
        qtbot.waitUntil(lambda: w.dialog is not None, timeout=2000)
        dialog = w.dialog
        qtbot.wait(30)
        problems += [f"{t}-{action}: {p}" for p in layout_problems(dialog)]
        save(dialog, f"{t}-{action}")
        dialog.reject()
        qtbot.waitUntil(lambda: w.dialog is None, timeout=2000)
    return problems


@pytest.mark.parametrize("size", COUNTER_SIZES, ids=tag)
def test_counter_fits_every_size_in_both_languages(qtbot: Any, hall: BrokerThread, kiosk: BrokerClient,  # noqa: F811
                                                   clock: ManualClock, terminal: Any,  # noqa: F811
                                                   size: tuple[int, int]) -> None:
    problems: list[str] = []
    config: HallConfig = hall.config
    for lang in ("zh", "en"):
        t = f"counter-{tag(size)}-{lang}"
        term = terminal(counter=1 if lang == "zh" else 2, lang=lang)
        w = term.window
        w.resize(*size)
        assert (w.width(), w.height()) == size
        problems += check(qtbot, w, size, f"{t}-signed-out")
        clerk = next(c for c in config.counters if c.number == term.model.counter).clerk_a
        sign_in(qtbot, term, clerk)
        services = next(c for c in config.counters if c.number == term.model.counter).services
        for i in range(8):
            take(kiosk, clock, services[i % len(services)], 1)
        qtbot.waitUntil(lambda term=term: len(term.model.waiting_list()) >= 8, timeout=5000)
        w.refresh()
        problems += check(qtbot, w, size, f"{t}-waiting")
        if size == (1366, 768):
            assert visible_rows(w.waiting) >= 5, f"{t}: the queue shows {visible_rows(w.waiting)} rows"
        for _ in range(2):  # two no-shows (an A and a B ticket) fill the no-show list with both services
            w.trigger("call_next")
            qtbot.waitUntil(lambda term=term: term.model.phase() == "called" and not term.model.busy, timeout=5000)
            w.trigger("no_show", confirmed=True)
            qtbot.waitUntil(lambda term=term: term.model.phase() == "idle" and not term.model.busy, timeout=5000)
        w.refresh()
        qtbot.waitUntil(lambda w=w: w.no_show_list.count() >= 2, timeout=5000)
        w.trigger("call_next")
        settle(qtbot, term)
        w.trigger("start")
        settle(qtbot, term)
        problems += check(qtbot, w, size, f"{t}-serving")
        problems += dialogs(qtbot, w, t, ("transfer",))
        w.trigger("finish")
        settle(qtbot, term)
        problems += dialogs(qtbot, w, t, ("call_ticket", "reinstate"))
        w.trigger("call_next")
        settle(qtbot, term)
        w.trigger("start")
        settle(qtbot, term)
        term.model.on_connection(False)
        w.refresh()
        problems += check(qtbot, w, size, f"{t}-disconnected")
        term.link.stop()
    assert problems == [], "\n".join(problems)
