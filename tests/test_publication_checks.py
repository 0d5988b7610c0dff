"""The broker's publication checks (``queuehall.broker.server.PUBLICATION_CHECKS``): the tests' dirty-mark check
lives in the tests, not in the broker, and still catches a record the engine changed without marking it."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from queuehall.broker import engine, server
from queuehall.broker.config import load_config
from queuehall.broker.engine import Hall
from queuehall.broker.server import Broker

from queuehall.clock import ManualClock
from tests.broker_fixtures import free_port_pair
from tests.hall_factory import TUESDAY, local, memory_pins, small_config
from tests.publication_checks import dirty_mark_check, index_check

TUESDAY_9 = datetime(2026, 11, 24, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def test_the_broker_and_the_hall_carry_no_test_state() -> None:
    assert not hasattr(Broker, "verify_dirty") and not hasattr(Broker, "dirty_misses")
    assert not hasattr(Hall, "verify_pick")
    assert len(server.PUBLICATION_CHECKS) == 1 and [index_check] == engine.PICK_CHECKS  # tests/conftest.py's


def test_every_call_next_runs_the_pick_checks_and_the_index_check_catches_a_disagreement(
        monkeypatch: pytest.MonkeyPatch) -> None:
    config = small_config()
    hall = Hall(config, ManualClock(local(TUESDAY, 9)), pins=memory_pins(config))
    hall.execute("take_ticket", {"service": "P"})
    hall.execute("sign_in", {"counter": 1, "clerk": "c1a", "pin": "1234"})
    seen: list[str] = []

    def also_a_wrong_index(h: Any, tx: Any, counter: int, found: Any, oldest: Any, tickets_of: Any) -> None:
        index_check(h, tx, counter, found, oldest, tickets_of)  # the real candidates agree
        seen.append("agreed")
        with pytest.raises(AssertionError, match="queue index disagrees"):
            index_check(h, tx, counter, set(), None, lambda service: [])  # an index that lost the ticket
        seen.append("caught")

    monkeypatch.setattr(engine, "PICK_CHECKS", [also_a_wrong_index])
    assert hall.execute("call_next", {"counter": 1})["ticket"]["label"] == "A001"
    assert seen == ["agreed", "caught"]


def test_a_change_the_engine_did_not_mark_is_caught() -> None:
    config = load_config()
    hall = Hall(config, ManualClock(TUESDAY_9), pins=memory_pins(config))
    broker = Broker(hall, port=free_port_pair())  # never bound: only its view of what was published
    misses: list[str] = []
    check = dirty_mark_check(misses)
    hall.execute("take_ticket", {"service": "passport"})  # one more waiting: the service's summary changed
    now = hall.clock.now()
    # A publication that rebuilt nothing, as if the engine had not marked the service: caught.
    check(broker, now, {}, {})
    assert misses == ["service passport"]
    # Rebuilt (marked), the same change is no miss.
    misses.clear()
    check(broker, now, {"passport": hall.service_summary(hall.services["passport"], now)}, {})
    assert misses == []
