"""The broker's publication checks (``queuehall.broker.server.PUBLICATION_CHECKS``): the tests' dirty-mark check
lives in the tests, not in the broker, and still catches a record the engine changed without marking it."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from queuehall.broker import server
from queuehall.broker.config import load_config
from queuehall.broker.engine import Hall
from queuehall.broker.server import Broker

from queuehall.clock import ManualClock
from tests.broker_fixtures import free_port_pair
from tests.hall_factory import memory_pins
from tests.publication_checks import dirty_mark_check

TUESDAY_9 = datetime(2026, 11, 24, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def test_the_broker_carries_no_test_state() -> None:
    assert not hasattr(Broker, "verify_dirty") and not hasattr(Broker, "dirty_misses")
    assert len(server.PUBLICATION_CHECKS) == 1  # the tests' own, registered by tests/conftest.py


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
