"""``queuehall web``: the web gateway (ticket pages and the REST API) as a broker client, on uvicorn.

    queuehall web --broker 10.0.0.2:5555 --key web.key_secret --server-key broker.key \\
                  --listen 0.0.0.0:8080 --public-url https://queue.example.gov.cn

docs/web.md describes what it serves; the key is made with ``queuehall keys add DIR NAME --role web``.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from typing import TYPE_CHECKING, Any

from queuehall.client import Link, Security
from queuehall.guesses import DEFAULT_WRONG_CODES_PER_MINUTE

if TYPE_CHECKING:  # the web application (Starlette) is imported only when the gateway runs
    from queuehall.web.hub import Hub

log = logging.getLogger("queuehall.web")


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) -> (host, port); ValueError when malformed."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--listen {value!r}: expected HOST:PORT, e.g. 0.0.0.0:8080")
    return host.strip("[]"), int(port)


def _brokers(args: argparse.Namespace) -> tuple[list[tuple[str | None, str | None]], list[Security | None]]:
    """The ``--broker`` options as (hall key or None, HOST:PORT) — one (None, None) for $QUEUEHALL_BROKER —
    and each one's CurveZMQ keys from ``--key``/``--server-key`` (ValueError when unusable)."""
    from queuehall.web.city import parse_broker

    halls: list[tuple[str | None, str | None]] = [parse_broker(b) for b in args.broker or []] or [(None, None)]
    keys = [k for k in halls if k[0] is not None]
    if len({k for k, _ in keys}) != len(keys):
        raise ValueError("--broker: each hall's name may be given once")
    server_keys = args.server_key or [None]
    if len(server_keys) == 1:
        server_keys = server_keys * len(halls)
    if len(server_keys) != len(halls):
        raise ValueError(f"--server-key: give one for every broker, or one per --broker ({len(halls)})")
    return halls, [Security.from_options(args.key, sk) for sk in server_keys]


def make_hub(broker: str | None, security: Any = None, name: str = "web") -> Hub:
    """The gateway's broker connection: a Link of role ``web`` (the broker trusts its key's role)."""
    from queuehall.web.hub import Hub

    # A stable client id (the broker prefixes it with the key's name): commands sent with an Idempotency-Key
    # are recognised by (client, id) also after the gateway restarted.
    return Hub(Link(broker, role="web", name=name, security=security, client_id=f"web-{name}"[:40]))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--broker", action="append", default=None, metavar="[HALL=]HOST:PORT",
                   help="the broker (or $QUEUEHALL_BROKER), or a:5555,b:5555 for a primary/standby pair; repeat it "
                        "for a city gateway: one per hall, the first serving the ticket pages and the API, every "
                        "one on the city page /city (docs/web.md)")
    p.add_argument("--key", default=None, help="the gateway's .key_secret file (a key of role web)")
    p.add_argument("--server-key", action="append", default=None,
                   help="the broker's public key file (broker.key); once for every broker, or once per --broker "
                        "in the same order")
    p.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT to serve HTTP on (default %(default)s)")
    p.add_argument("--public-url", default="",
                   help="the address phones reach this gateway at (default: the hall's public_base_url)")
    p.add_argument("--name", default="web", help="the name the broker lists this gateway under")
    p.add_argument("--max-streams", type=int, default=20_000,
                   help="open ticket pages at most (default %(default)s)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--state", default=None,
                   help="the gateway's state (API tokens, managers, webhooks): a file, or a postgresql:// URL "
                        "shared by several gateways (default $QUEUEHALL_WEB_STATE or ./web-state.db)")
    p.add_argument("--limit-token", default="20/40", metavar="RATE/BURST",
                   help="REST requests per second per API token, and the burst (default %(default)s)")
    p.add_argument("--limit-address", default="50/100", metavar="RATE/BURST",
                   help="REST requests per second per client address, and the burst (default %(default)s)")
    p.add_argument("--wrong-codes", type=int, default=DEFAULT_WRONG_CODES_PER_MINUTE, metavar="N",
                   help="wrong booking codes a client address may give in a minute before it waits (default "
                        "%(default)s; docs/calling-rules.md)")
    p.add_argument("--no-webhooks", action="store_true", help="do not deliver webhooks from this gateway")


def run(args: argparse.Namespace) -> int:
    import uvicorn
    from queuehall.web import halls as city_halls
    from queuehall.web.ratelimit import Limit, RateLimits
    from queuehall.web.state import state_path

    try:
        host, port = parse_listen(args.listen)
        halls, securities = _brokers(args)
        security = securities[0]
        main_key, main_broker = halls[0]
        hub = make_hub(main_broker, security, args.name)
        city = [(main_key or main_broker or "hall", hub)]
        for i, ((key, addr), sec) in enumerate(zip(halls[1:], securities[1:], strict=True), start=2):
            city.append((key or addr or f"hall-{i}", make_hub(addr, sec, f"{args.name}-{key or i}")))
        limits = RateLimits(per_token=Limit.parse(args.limit_token), per_address=Limit.parse(args.limit_address))
        if args.wrong_codes < 1:
            raise ValueError(f"--wrong-codes must be at least 1 (至少为 1), not {args.wrong_codes}")
    except ValueError as err:
        print(f"queuehall web: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Every hall's ticket pages, REST API, bookings and supervision, under /h/<hall> (the first one's also
    # without the prefix), and the city page (docs/web.md).
    app = city_halls.build(city, state=state_path(args.state), public_url=args.public_url,
                           max_streams=args.max_streams, limits=limits, webhooks=not args.no_webhooks,
                           broker=main_broker, security=security,
                           # unique among gateways sharing a state, the same after a restart (web/outbox.py)
                           owner=f"{socket.gethostname()}:{args.name}", wrong_codes=args.wrong_codes)
    config = uvicorn.Config(app, host=host, port=port, log_level=args.log_level, access_log=False,
                            backlog=4096, timeout_keep_alive=30, lifespan="on",
                            # Open pages never end by themselves: on shutdown they are cut after 2 s.
                            timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    print(f"queuehall web: serving on http://{host}:{port} (broker {hub.link.host}:{hub.link.port})", flush=True)
    server.run()
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("web", help="run the web gateway: ticket pages and the REST API")
    add_arguments(p)
    p.set_defaults(func=run)


class GatewayThread:
    """The gateway served by uvicorn in a thread of this process (the headless demo, benchmarks)."""

    def __init__(self, hub: Hub, host: str, port: int, public_url: str = "") -> None:
        import threading

        import uvicorn
        from queuehall.web.app import WebSettings, create_app

        self.url = f"http://{host}:{port}"
        self.app = create_app(hub, WebSettings(public_url=public_url or self.url))
        self.server = uvicorn.Server(uvicorn.Config(self.app, host=host, port=port, log_level="warning",
                                                    access_log=False, lifespan="on", timeout_graceful_shutdown=2))
        self.thread = threading.Thread(target=self.server.run, name="queuehall-web", daemon=True)

    def start(self, timeout: float = 20.0) -> GatewayThread:
        """Start serving; return once the gateway answers with a current picture of the hall."""
        import time
        import urllib.request

        self.thread.start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the web gateway at {self.url} did not become ready")
            time.sleep(0.1)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
