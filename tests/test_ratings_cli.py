"""好差评 through a real broker: ``queuehall rate COUNTER LEVEL`` (the evaluator box), ``queuehall cases``,
who may rate (a counter's own screen, never the clerk's terminal), and the hall default given on the
broker's heartbeat."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from queuehall.broker import keys
from queuehall.broker.config import Rating as RatingRules
from queuehall.broker.storage import ratings
from sqlalchemy import select

from queuehall.cli import EXIT_OK, EXIT_REFUSED, EXIT_USAGE
from queuehall.clock import ManualClock
from tests import broker_fixtures
from tests.broker_fixtures import BrokerThread, wait_until
from tests.hall_factory import small_config
from tests.test_cli import run

hall_config_fixture = broker_fixtures.hall_config_fixture
keys_dir_fixture = broker_fixtures.keys_dir_fixture
manual_clock_fixture = broker_fixtures.manual_clock_fixture
start_broker_fixture = broker_fixtures.start_broker_fixture


def serve(capsys: pytest.CaptureFixture[str], b: tuple[str, ...], counter: str = "1") -> str:
    assert run(capsys, "take", "P", *b)[0] == EXIT_OK
    for cmd in ("call", "start", "finish"):
        code, out, _ = run(capsys, cmd, counter, *b)
        assert code == EXIT_OK, out
    return out["result"]["ticket"]["label"]


def test_the_evaluator_box_rates_and_cases_are_followed_up(start_broker: Callable[..., BrokerThread],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    bt = start_broker(small_config())
    b = ("--broker", bt.endpoint)
    code, out, _ = run(capsys, "rate", "1", "5", *b)
    assert (code, out["error"]["code"]) == (EXIT_REFUSED, "NOTHING_TO_RATE")
    assert run(capsys, "signin", "1", "c1a", "--pin-stdin", *b, stdin="1234\n")[0] == EXIT_OK
    label = serve(capsys, b)
    code, out, _ = run(capsys, "rate", "1", "2", "--indicator", "attitude", "--reason", "不耐烦", *b)
    assert code == EXIT_OK
    assert out["result"]["rating"]["label"] == label and out["result"]["rating"]["channel"] == "evaluator_box"
    case = out["result"]["case"]["id"]
    code, out, _ = run(capsys, "rate", "1", "5", *b)
    assert (code, out["error"]["code"]) == (EXIT_REFUSED, "ALREADY_RATED")
    assert out["error"]["message_zh"].startswith(label)
    assert run(capsys, "rate", "1", "9", *b)[1]["error"]["code"] == "BAD_LEVEL"
    assert run(capsys, "rate", "1", "five", *b)[0] == EXIT_USAGE
    code, out, _ = run(capsys, "cases", "list", *b)
    assert code == EXIT_OK and [c["id"] for c in out["result"]["cases"]] == [case]
    code, out, _ = run(capsys, "cases", "close", str(case), "属实", "已整改", *b)
    assert (code, out["error"]["code"]) == (EXIT_REFUSED, "CALLBACK_REQUIRED")
    assert run(capsys, "cases", "callback", str(case), "已回访", "--by", "mgr", *b)[0] == EXIT_OK
    code, out, _ = run(capsys, "cases", "close", str(case), "属实", "已整改", "--by", "mgr", *b)
    assert code == EXIT_OK and out["result"]["on_time"] is True
    assert run(capsys, "cases", "list", *b)[1]["result"]["cases"] == []


def test_who_may_rate(start_broker: Callable[..., BrokerThread], keys_dir: Path,
                      capsys: pytest.CaptureFixture[str]) -> None:
    keys.add_device(keys_dir, "screen-1", "display", 1)
    bt = start_broker(small_config(), keys_dir=keys_dir)

    def as_(name: str) -> tuple[str, ...]:
        return ("--broker", bt.endpoint, "--key", f"{keys_dir}/secret/{name}.key_secret",
                "--server-key", f"{keys_dir}/broker.key")

    assert run(capsys, "signin", "1", "c1a", "--pin-stdin", *as_("counter-1"), stdin="1234\n")[0] == EXIT_OK
    assert run(capsys, "take", "P", *as_("kiosk-1"))[0] == EXIT_OK
    for cmd in ("call", "start", "finish"):
        assert run(capsys, cmd, "1", *as_("counter-1"))[0] == EXIT_OK
    for who, args in (("counter-1", ("1", "5")),  # the clerk's own terminal
                      ("kiosk-1", ("1", "5")),
                      ("wall-1", ("1", "5")),  # a display of no counter
                      ("screen-1", ("2", "5")),  # another counter's visits
                      ("screen-1", ("1", "5", "--channel", "cli"))):
        code, out, _ = run(capsys, "rate", *args, *as_(who))
        assert (code, out["error"]["code"]) == (EXIT_REFUSED, "FORBIDDEN"), who
    code, out, _ = run(capsys, "rate", "1", "4", *as_("screen-1"))
    assert code == EXIT_OK and out["result"]["rating"]["level"] == 4, out
    code, out, _ = run(capsys, "cases", "list", *as_("screen-1"))
    assert (code, out["error"]["code"]) == (EXIT_REFUSED, "FORBIDDEN")  # cases are the manager's


def test_the_broker_gives_the_halls_default_when_the_window_closes(start_broker: Callable[..., BrokerThread],
                                                                   manual_clock: ManualClock,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    cfg = replace(small_config(), rating=RatingRules(window_minutes=5, default_level=4))
    bt = start_broker(cfg)
    b = ("--broker", bt.endpoint)
    assert run(capsys, "signin", "1", "c1a", "--pin-stdin", *b, stdin="1234\n")[0] == EXIT_OK
    label = serve(capsys, b)
    manual_clock.advance(minutes=6)
    assert bt.store is not None

    def stored() -> Any:
        with bt.store.engine.connect() as conn:  # type: ignore[union-attr]
            return conn.execute(select(ratings)).all()

    row = wait_until(stored, what="the default rating")[0]
    assert (row.label, row.level, row.is_default, row.channel) == (label, 4, True, "default")
    code, out, _ = run(capsys, "rate", "1", "1", "--ticket", label, *b)
    assert (code, out["error"]["code"]) == (EXIT_REFUSED, "ALREADY_RATED")
