"""A real web gateway for tests: the application on uvicorn in a thread, on a free port of 127.0.0.1,
connected to a real broker (tests/broker_fixtures.py) by a real Link of role ``web``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from queuehall.web.app import WebSettings, create_app
from queuehall.web.hub import Hub

from queuehall.client import Link, Security
from queuehall.demo import free_port as demo_free_port
from tests.broker_fixtures import BrokerThread, wait_until


def free_port() -> int:
    """One free port for a web server (queuehall.demo.free_port, the one finder)."""
    return demo_free_port(1)


class Gateway:
    """``create_app`` served by uvicorn in a thread; :attr:`url` is its base address."""

    def __init__(self, broker: BrokerThread, *, security: Security | None = None,
                 settings: WebSettings | None = None, parts: dict[str, Any] | None = None,
                 port: int | None = None) -> None:
        """``parts``: more of ``create_app``'s keyword arguments (the integrations: web/integrations.py)."""
        self.broker = broker
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.hub = Hub(Link(broker.endpoint, role="web", name="web-test", security=security, client_id="web-test"))
        self.app = create_app(self.hub, settings or WebSettings(public_url=self.url), **(parts or {}))
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                access_log=False, lifespan="on", timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=f"web-{self.port}", daemon=True)

    def start(self, *, wait_ready: bool = True) -> Gateway:
        self.thread.start()
        wait_until(lambda: self.server.started, 10, "uvicorn to start")
        if wait_ready:
            wait_until(lambda: self.get("/healthz").status_code == 200, 10, "the gateway to sync with the broker")
        return self

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=5, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.post(self.url + path, timeout=10, **kw)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        assert not self.thread.is_alive(), "the gateway did not stop"


@pytest.fixture(name="start_gateway")
def start_gateway_fixture() -> Iterator[Callable[..., Gateway]]:
    """Factory: ``start_gateway(broker, security=None, settings=None)``; stopped at the end of the test."""
    made: list[Gateway] = []

    def start(broker: BrokerThread, **kw: Any) -> Gateway:
        g = Gateway(broker, **kw)
        made.append(g)
        return g.start()

    yield start
    for g in made:
        g.stop()


def sse_lines(url: str, count: int, timeout: float = 5.0) -> list[str]:
    """The first ``count`` ``data:`` payloads of the event stream at ``url``."""
    out: list[str] = []
    deadline = time.monotonic() + timeout
    with httpx.stream("GET", url, timeout=timeout) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if line.startswith("data: "):
                out.append(line[6:])
                if len(out) >= count:
                    break
            if time.monotonic() > deadline:
                break
    return out
