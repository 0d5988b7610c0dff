"""docs/protocol.md's conformance examples, sent as written to a real broker.

A vendor writing a client in another language builds from the document alone; these examples are its
executable part. Each ```json conformance block is a request and the reply it must get (``"*"`` matches any
value; an object matches when every field it names matches).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from tests import broker_fixtures
from tests.broker_fixtures import BrokerThread

ROOT = Path(__file__).resolve().parent.parent
hall_config_fixture = broker_fixtures.hall_config_fixture
manual_clock_fixture = broker_fixtures.manual_clock_fixture
start_broker_fixture = broker_fixtures.start_broker_fixture


def examples() -> list[dict[str, Any]]:
    text = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    return [json.loads(block) for block in re.findall(r"```json conformance\n(.*?)```", text, re.S)]


def matches(expected: Any, actual: Any, path: str = "reply") -> list[str]:
    """Where ``actual`` departs from ``expected`` (empty when it conforms)."""
    if expected == "*":
        return []
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected an object, got {actual!r}"]
        return [m for k, v in expected.items()
                for m in (matches(v, actual[k], f"{path}.{k}") if k in actual else [f"{path}.{k}: missing"])]
    return [] if expected == actual and type(expected) is type(actual) else [f"{path}: {actual!r} != {expected!r}"]


def test_the_documented_examples_are_what_the_broker_answers(start_broker: Callable[..., BrokerThread],
                                                              hall_config: Any) -> None:
    found = examples()
    assert len(found) >= 8, "docs/protocol.md lost its conformance examples"
    bt = start_broker(hall_config)
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(f"tcp://{bt.endpoint}")
    try:
        for example in found:
            # Exactly one frame, the JSON body, as the document says.
            sock.send(json.dumps(example["request"], ensure_ascii=False).encode())
            assert sock.poll(5000), f"no reply to {example['request']}"
            frames = sock.recv_multipart()
            assert len(frames) == 1
            reply = json.loads(frames[0])
            assert not matches(example["reply"], reply), (example["request"]["id"], matches(example["reply"], reply))
        # What the document says a REQ-style delimiter gets: silence.
        sock.send_multipart([b"", json.dumps(found[0]["request"]).encode()])
        assert not sock.poll(500)
    finally:
        sock.close(0)


def test_the_matcher_can_fail() -> None:
    assert matches({"a": {"b": 1}}, {"a": {"b": 2}}) == ["reply.a.b: 2 != 1"]
    assert matches({"a": 1}, {}) == ["reply.a: missing"]
    assert matches({"a": 1}, {"a": True})  # true is not 1
    assert not matches({"a": "*", "b": [1]}, {"a": None, "b": [1], "c": 3})
