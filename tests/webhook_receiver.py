"""A webhook receiver for the tests: a real HTTP server on a free loopback port that checks every
signature as a subscriber would (with its own HMAC code, not the gateway's) and records what came."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def check_signature(secret: str, header: str, body: bytes, tolerance: float = 300) -> bool:
    """The receiver's side, written from docs/web.md: ``t=<unix>,v1=<hex hmac-sha256(secret, t + "." + body)>``."""
    fields = dict(part.split("=", 1) for part in header.split(","))
    if abs(time.time() - int(fields["t"])) > tolerance:
        return False
    expected = hmac.new(secret.encode(), fields["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"])


class Receiver:
    """Records every POST: ``calls`` (all attempts) and ``accepted`` (those answered 2xx).

    ``answer(n)`` gives the status of the n-th request (0-based); the default accepts everything.
    """

    def __init__(self, secret: str = "", answer: Callable[[int], int] | None = None) -> None:
        self.secret = secret
        self.answer = answer or (lambda n: 200)
        self.calls: list[dict[str, Any]] = []
        self.accepted: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    n = len(receiver.calls)
                    call = {"headers": dict(self.headers), "body": body, "json": json.loads(body),
                            "signed": bool(receiver.secret) and check_signature(
                                receiver.secret, self.headers.get("X-Queuehall-Signature", ""), body)}
                    receiver.calls.append(call)
                    status = receiver.answer(n)
                    if 200 <= status < 300:
                        receiver.accepted.append(call)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def journal_seqs(self) -> list[int]:
        """The accepted events' journal numbers, de-duplicated by delivery id, in arrival order."""
        with self.lock:
            seen: set[str] = set()
            out = []
            for c in self.accepted:
                did = c["headers"]["X-Queuehall-Delivery"]
                if did not in seen:
                    seen.add(did)
                    out.append(c["json"]["journal_seq"])
            return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
