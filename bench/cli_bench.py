"""The call button's figure: ``queuehall call N`` end to end, against ``python -c pass`` in the same run.

A hardware call button (docs/cli.md) runs ``queuehall call N`` on every press, so what a clerk feels is a whole
process: interpreter start, imports, the CurveZMQ-free request to the broker, the reply, exit. This benchmark starts
a real broker (``queuehall broker``, SQLite, the default hall on a simulated Tuesday morning) in its own process,
signs a clerk in at counter 1, takes tickets, then times presses of the real console script, alternating each press
with a bare ``python -c pass`` so both see the same machine load. Between presses the called ticket is finished
through the client library (untimed), so every timed press calls a real ticket and gets ``status: ok``.

Target (issue #21): p50 of a press ≤ 2.5 × p50 of ``python -c pass``. The CPU time of each process (user +
system, from ``getrusage``) is reported beside the wall time: on a shared machine it says what a press costs
whatever the neighbours do. Prints one JSON object.

Usage::

    .venv/bin/python bench/cli_bench.py [--presses 40]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import benchlib  # noqa: E402  (bench/benchlib.py, beside this script)

from queuehall.client import BrokerClient, CommandRefused  # noqa: E402
from queuehall.demo import free_port  # noqa: E402  (the broker binds P, P+1 and P+2)

TARGET_RATIO = 2.5
COUNTER = 1
SERVICE = "passport"
CLERK, PIN = "c01a", "4821"  # the default hall's example clerk of counter 1


CPU: list[float] = []  # the CPU time (user + system) of each timed process, in the order run


def timed_run(argv: list[str]) -> tuple[float, str]:
    """Run ``argv``; its wall time and standard output. Its CPU time is appended to CPU."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[:3]} exited {done.returncode}: {done.stdout} {done.stderr}")
    return elapsed, done.stdout


def summary_ms(seconds: list[float]) -> dict[str, float]:
    ms = sorted(x * 1000 for x in seconds)
    return {"min": round(ms[0], 1), "p50": round(statistics.median(ms), 1),
            "p90": round(ms[int(0.9 * (len(ms) - 1))], 1), "max": round(ms[-1], 1)}


def serve_called(client: BrokerClient, session: str) -> None:
    """Serve the ticket the last press called, so the next press calls a new one."""
    try:
        client.request("start", counter=COUNTER, session=session)
        client.request("finish", counter=COUNTER, session=session)
    except CommandRefused as err:
        raise RuntimeError(f"serving the called ticket was refused: {err.error}") from None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presses", type=int, default=40)
    args = ap.parse_args()
    queuehall = str(Path(sys.executable).with_name("queuehall"))
    port = free_port()
    endpoint = f"127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="queuehall-cli-bench-") as tmp:
        # The clerk's PIN, set as a hall sets it (only its scrypt hash goes into the database).
        subprocess.run([queuehall, "clerks", "set-pin", CLERK, "--stdin", "--db", f"sqlite:///{tmp}/hall.db"],
                       input=PIN + "\n", text=True, capture_output=True, check=True, timeout=60)
        broker = subprocess.Popen(
            [sys.executable, "-m", "queuehall.cli", "broker", "--db", f"sqlite:///{tmp}/hall.db", "--port", str(port),
             "--sim-start", "2026-12-08T09:30", "--insecure"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "broker.log"), "w"))  # noqa: SIM115
        client = BrokerClient(endpoint, timeout=2.0)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    client.request("snapshot", tickets="none")
                    break
                except Exception:
                    if time.monotonic() > deadline or broker.poll() is not None:
                        raise RuntimeError(Path(tmp, "broker.log").read_text()) from None
            session = client.request("sign_in", counter=COUNTER, clerk=CLERK, pin=PIN)["session"]
            for _ in range(args.presses + 2):
                client.request("take_ticket", service=SERVICE)
            # One untimed press of each first: the page cache holds the interpreter and the modules after it.
            timed_run([sys.executable, "-c", "pass"])
            timed_run([queuehall, "call", str(COUNTER), "--broker", endpoint])
            serve_called(client, session)
            presses: list[float] = []
            bare: list[float] = []
            press_cpu: list[float] = []
            bare_cpu: list[float] = []
            for i in range(args.presses):
                pair = [("bare", [sys.executable, "-c", "pass"]),
                        ("press", [queuehall, "call", str(COUNTER), "--broker", endpoint])]
                for kind, argv in pair if i % 2 == 0 else reversed(pair):
                    elapsed, out = timed_run(argv)
                    if kind == "press":
                        reply = json.loads(out)
                        assert reply["status"] == "ok", reply
                        presses.append(elapsed)
                        press_cpu.append(CPU[-1])
                    else:
                        bare.append(elapsed)
                        bare_cpu.append(CPU[-1])
                serve_called(client, session)
        finally:
            client.close()
            broker.terminate()
            broker.wait(10)
    press = summary_ms(presses)
    base = summary_ms(bare)
    ratio = round(press["p50"] / base["p50"], 2)
    result: dict[str, Any] = {
        "benchmark": "cli_call",
        "machine": benchlib.machine(),
        "presses": len(presses),
        "queuehall_call_ms": press,
        "python_c_pass_ms": base,
        "ratio_p50": ratio,
        # CPU time is what the press itself costs, whatever else the machine is doing at the time.
        "queuehall_call_cpu_ms": summary_ms(press_cpu),
        "python_c_pass_cpu_ms": summary_ms(bare_cpu),
        "cpu_ratio_p50": round(statistics.median(press_cpu) / statistics.median(bare_cpu), 2),
        "target_ratio_p50": TARGET_RATIO,
        "met": ratio <= TARGET_RATIO,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
