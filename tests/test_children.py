"""Processes that end with their parent (queuehall.demo.die_with_parent), and the one port finder
(queuehall.demo.free_port), which the demo, the tests and the benchmarks share."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from queuehall.demo import free_port
from tests.broker_fixtures import wait_until

ROOT = Path(__file__).resolve().parent.parent


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_a_child_started_with_die_with_parent_ends_when_its_parent_is_killed() -> None:
    code = ("import subprocess, sys, time\n"
            "from queuehall.demo import die_with_parent\n"
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'],\n"
            "                     preexec_fn=die_with_parent())\n"
            "print(p.pid, flush=True)\n"
            "time.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    try:
        assert not _gone(child)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        wait_until(lambda: _gone(child), 10, "the orphan to end")
    finally:
        if not _gone(child):
            os.kill(child, signal.SIGKILL)


def test_every_process_a_benchmark_starts_ends_with_it() -> None:
    """A benchmark that dies (a crash, a timeout's SIGKILL) left its brokers running before; now every child a
    bench starts with subprocess gets die_with_parent, and every multiprocessing broker calls it first."""
    missing = []
    for path in sorted((ROOT / "bench").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        calls = len(re.findall(r"subprocess\.Popen\(", text))
        armed = len(re.findall(r"preexec_fn=die_with_parent\(\)", text))
        if armed < calls:
            missing.append(f"{path.name}: {calls - armed} of {calls} Popen calls")
        for target in re.findall(r"Process\(\s*target=(\w+)", text):
            body = text.split(f"def {target}(", 1)[-1].split("\ndef ", 1)[0]
            if "broker" in target and "die_with_parent(" not in body:
                missing.append(f"{path.name}: {target}")
    assert missing == []


def test_one_port_finder_gives_consecutive_free_ports_below_the_outgoing_range() -> None:
    import socket

    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0]) \
        if Path("/proc/sys/net/ipv4/ip_local_port_range").exists() else 32768
    for count in (1, 3):
        port = free_port(count)
        assert port >= 20000 and port + count <= max(low, 24000)
        socks = []
        try:
            for i in range(count):  # every one of them can be bound now
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", port + i))
                socks.append(s)
        finally:
            for s in socks:
                s.close()
    finders = []
    for folder in ("bench", "tests", "queuehall"):
        for path in sorted((ROOT / folder).glob("*.py")):
            if path.name == "demo.py":
                continue
            text = path.read_text(encoding="utf-8")
            for name, body in re.findall(r"\ndef (_?free_ports?(?:_pair)?)\(.*?\n((?:    .*\n|\n)*)", text):
                if "socket" in body:
                    finders.append(f"{path.name}: {name}")
    assert finders == []  # nobody else looks for free ports
