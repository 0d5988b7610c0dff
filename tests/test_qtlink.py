"""The Qt adapter of the link: what reaches a screen's GUI thread, and what it costs to hold.

A screen runs for years; a busy hour's burst of events must not pile up copies of the hall's state in memory
while the GUI thread is busy (bench/soak_bench.py found 1.4 GB after 1,500 calls), and must not lose or
reorder a single event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtWidgets import QApplication

from queuehall.client import BrokerClient
from queuehall.qtlink import QtLink
from tests import broker_fixtures
from tests.broker_fixtures import BrokerThread, wait_until

hall_config_fixture = broker_fixtures.hall_config_fixture
manual_clock_fixture = broker_fixtures.manual_clock_fixture
start_broker_fixture = broker_fixtures.start_broker_fixture


def test_a_busy_gui_thread_gets_every_event_in_order_then_one_latest_state(
        qapp: QApplication, start_broker: Callable[..., BrokerThread], hall_config: Any) -> None:
    bt = start_broker(hall_config)
    link = QtLink(bt.endpoint, role="display", name="wall")
    got: list[tuple[str, Any]] = []
    link.event.connect(lambda msg: got.append(("event", msg)))
    link.state_changed.connect(lambda state: got.append(("state", state)))
    link.start()
    try:
        wait_until(lambda: (qapp.processEvents(), link.alive and any(k == "state" for k, _ in got))[1],
                   what="the first snapshot")
        got.clear()
        client = BrokerClient(bt.endpoint)
        labels = [client.request("take_ticket", service="passport")["ticket"]["label"] for _ in range(40)]
        client.close()
        # The GUI thread is busy (no events processed) while the link thread takes all 40 in.
        wait_until(lambda: sum(1 for t in link.link.mirror.state.get("tickets", {}).values()
                               if t["label"] in labels) == 40, what="the link to apply every event")
        qapp.processEvents()
    finally:
        link.stop()
    kinds = [kind for kind, _ in got]
    issued = [msg["event"]["ticket"]["label"] for kind, msg in got
              if kind == "event" and msg["event"].get("type") == "ticket_issued"]
    assert issued == labels  # none lost, none reordered
    # One state for the whole burst, after its events, holding all of them.
    assert kinds.count("state") == 1 and kinds[-1] == "state", kinds
    state = got[-1][1]
    assert {t["label"] for t in state["tickets"].values()} >= set(labels)
    # Python objects cross the thread as they are (a Signal(dict) copies everything into a QVariantMap).
    assert type(state) is dict and type(got[0][1]) is dict
