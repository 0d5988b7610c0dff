"""API tokens (web/apitokens.py), rate limits (web/ratelimit.py) and the ``queuehall web-token`` command."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

import orjson
import pytest
from queuehall.web.apitokens import TokenError, TokenStore, allows, parse_scope, public_id, token_counters
from queuehall.web.ratelimit import Buckets, Limit, RateLimiter, RateLimitMiddleware, RateLimits, retry_after


class FakeMonotonic:
    """An injected monotonic clock (seconds)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


# ---------------------------------------------------------------------------------------------- tokens


def test_a_token_is_shown_once_and_only_its_hash_is_stored(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "state.db")
    token, info = store.create("wechat-miniprogram", ["kiosk"])
    assert token.startswith(f"qh_{info.id}_") and len(token.split("_", 2)[2]) == 43  # 256 bits
    assert info.scopes == ("kiosk",) and info.active
    assert store.verify(token) == info
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*"))
    assert token.split("_", 2)[2].encode() not in raw  # the secret is nowhere in the file
    assert stat.S_IMODE(os.stat(tmp_path / "state.db").st_mode) == 0o600


def test_wrong_tampered_and_malformed_tokens_are_refused(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "state.db")
    token, info = store.create("box-3", ["counter:3"])
    secret = token.split("_", 2)[2]
    other = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    assert store.verify(f"qh_{info.id}_{other}") is None
    assert store.verify(f"qh_00000000_{secret}") is None
    for bad in ("", "Bearer x", token + "x", token.upper(), f"qh_{info.id}", None):
        assert store.verify(bad) is None
    assert store.verify(" " + token + "\n") == info  # surrounding white space from a config file is fine


def test_revoked_token_is_refused_on_the_next_request_also_from_another_process(tmp_path: Path) -> None:
    gateway = TokenStore(tmp_path / "state.db")
    token, info = gateway.create("one-window-box", ["counter:1"])
    assert gateway.verify(token) is not None
    cli = TokenStore(tmp_path / "state.db")  # the CLI's own connection
    assert cli.revoke(info.id).revoked_at is not None
    assert gateway.verify(token) is None
    with pytest.raises(TokenError, match="no token"):
        cli.revoke("nope")


def test_revoke_by_name_or_whole_token(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "state.db")
    store.create("portal", ["read"])
    t2, i2 = store.create("kiosk-app", ["kiosk"])
    assert store.revoke("portal").name == "portal"
    assert store.revoke(t2).id == i2.id
    assert [t.name for t in store.list(include_revoked=False)] == []
    assert len(store.list()) == 2
    store.create("dup", ["read"])
    store.create("dup", ["read"])
    with pytest.raises(TokenError, match="revoke by id"):
        store.revoke("dup")


@pytest.mark.parametrize("bad", ["write", "counter:", "counter:0", "counter:x", "kiosk:1", "", "counter:-1"])
def test_bad_scopes_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(TokenError, match="unknown scope"):
        parse_scope(bad)
    store = TokenStore(tmp_path / "state.db")
    with pytest.raises(TokenError):
        store.create("x", [bad])
    assert store.list() == []  # nothing was written


def test_scopes_mirror_the_device_roles() -> None:
    assert allows(("read",), "read") and not allows(("read",), "kiosk")
    assert allows(("kiosk",), "kiosk") and allows(("kiosk",), "read") and not allows(("kiosk",), "counter", 1)
    assert allows(("counter:3",), "counter", 3) and not allows(("counter:3",), "counter", 4)
    assert allows(("counter:3",), "read") and not allows(("counter:3",), "kiosk")
    assert not allows(("counter:3",), "counter", None)
    assert all(allows(("admin",), need, 7) for need in ("read", "kiosk", "counter", "admin"))
    assert not allows(("kiosk", "read"), "admin")
    assert token_counters(("read", "counter:12", "counter:3")) == [3, 12]
    assert parse_scope(" Counter:5 ") == "counter:5"


def test_public_id() -> None:
    assert public_id("qh_0123abcd_" + "a" * 43) == "0123abcd"
    assert public_id("qh_0123abcd_short") is None


def _cli(capsys: pytest.CaptureFixture[str], *args: str, state: Path) -> tuple[int, Any, str]:
    """``queuehall ARGS --state STATE`` in this process (the entry point, argument parsing included)."""
    from queuehall.cli import main

    rc = main([*args, "--state", str(state)])
    out, err = capsys.readouterr()
    return rc, json.loads(out) if out.strip() else None, err


def test_web_token_command_creates_lists_and_revokes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "web.db"
    rc, out, _ = _cli(capsys, "web-token", "create", "--name", "一网通办", "--scope", "kiosk", "--scope", "read",
                      state=state)
    assert rc == 0 and out["scopes"] == ["kiosk", "read"] and out["name"] == "一网通办"
    token = out["token"]
    assert TokenStore(state).verify(token) is not None
    rc, listed, _ = _cli(capsys, "web-token", "list", state=state)
    assert rc == 0 and [t["id"] for t in listed["tokens"]] == [out["id"]]
    assert token not in json.dumps(listed) and "hash" not in listed["tokens"][0]
    rc, revoked, _ = _cli(capsys, "web-token", "revoke", out["id"], state=state)
    assert rc == 0 and revoked["active"] is False
    assert TokenStore(state).verify(token) is None
    rc, listed, _ = _cli(capsys, "web-token", "list", state=state)
    assert listed["tokens"] == []
    rc, _, err = _cli(capsys, "web-token", "create", "--name", "x", "--scope", "root", state=state)
    assert rc == 2 and "unknown scope 'root'" in err


# ---------------------------------------------------------------------------------------------- rate limits


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    clock = FakeMonotonic()
    b = Buckets(Limit(rate=2.0, burst=4.0), clock)
    assert [b.take("k") for _ in range(4)] == [0.0] * 4
    assert b.take("k") == pytest.approx(0.5)  # one request every half second from now on
    clock.t += 0.25
    assert b.take("k") == pytest.approx(0.25)
    clock.t += 0.25
    assert b.take("k") == 0.0
    assert b.take("other") == 0.0  # buckets are per key
    clock.t += 100
    assert [b.take("k") for _ in range(5)][-1] > 0  # refilled to the burst, not beyond


def test_full_buckets_are_dropped_past_max_keys() -> None:
    clock = FakeMonotonic()
    b = Buckets(Limit(rate=1.0, burst=2.0), clock, max_keys=10)
    for i in range(10):
        b.take(f"a{i}")
    clock.t += 5  # all refilled
    b.take("hot")
    b.take("hot")
    assert len(b) <= 11
    b.take("new")
    assert len(b) == 2  # the idle ones went; "hot" (not full) and "new" stay


def test_limiter_checks_the_address_and_the_token() -> None:
    clock = FakeMonotonic()
    lim = RateLimiter(RateLimits(per_token=Limit(1.0, 2.0), per_address=Limit(10.0, 3.0)), clock)
    assert lim.check("10.0.0.1", "tok1") == 0.0
    assert lim.check("10.0.0.1", "tok1") == 0.0
    assert lim.check("10.0.0.1", "tok1") == pytest.approx(1.0)  # the token's limit
    assert lim.check("10.0.0.1", "tok2") == 0.0  # the address had its request back: one left
    assert lim.check("10.0.0.1", None) > 0  # now the address's limit
    assert lim.check("10.0.0.2", "tok2") == 0.0
    clock.t += 1.0
    assert lim.check("10.0.0.1", "tok1") == 0.0
    assert retry_after(0.01) == 1 and retry_after(2.2) == 3


def _asgi_call(app: Any, path: str, client: str, token: str | None = None) -> tuple[int, dict[str, str], bytes]:
    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    scope = {"type": "http", "path": path, "client": (client, 5000), "headers": headers, "method": "GET"}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    asyncio.run(app(scope, receive, send))
    start = sent[0]
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, b"".join(
        m.get("body", b"") for m in sent[1:])


def test_middleware_answers_429_with_retry_after_and_a_bilingual_code() -> None:
    async def ok_app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    clock = FakeMonotonic()
    app = RateLimitMiddleware(ok_app, RateLimiter(RateLimits(per_token=Limit(0.5, 1.0), per_address=Limit(0.1, 3)),
                                                  clock))
    token = "qh_0123abcd_" + "a" * 43
    assert _asgi_call(app, "/api/v1/hall", "1.2.3.4", token)[0] == 200
    status, headers, body = _asgi_call(app, "/api/v1/hall", "1.2.3.4", token)
    assert status == 429 and headers["retry-after"] == "2"
    err = orjson.loads(body)["error"]
    assert err["code"] == "RATE_LIMITED" and err["details"] == {"retry_after": 2}
    assert "2 秒" in err["message_zh"] and "2 s" in err["message_en"]
    assert _asgi_call(app, "/t/sometoken", "1.2.3.4", token)[0] == 200  # only /api/ is limited
    for _ in range(5):  # ticket pages' event streams without a token: phones behind one address reconnecting
        assert _asgi_call(app, "/api/v1/tickets/abc/events", "1.2.3.4")[0] == 200
    clock.t += 2
    assert _asgi_call(app, "/api/v1/hall", "1.2.3.4", token)[0] == 200


def test_limit_parse() -> None:
    assert Limit.parse("20/40") == Limit(20.0, 40.0)
    assert Limit.parse("5") == Limit(5.0, 5.0)
    for bad in ("x", "0/1", "1/0"):
        with pytest.raises(ValueError):
            Limit.parse(bad)


def test_state_file_is_sqlite_in_wal_mode(tmp_path: Path) -> None:
    TokenStore(tmp_path / "s.db").close()
    conn = sqlite3.connect(tmp_path / "s.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
