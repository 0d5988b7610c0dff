"""The call button's figure: ``queuehall call N`` end to end, against ``python -c pass`` in the same run.

A hardware call button (docs/cli.md) runs ``queuehall call N`` on every press, so what a clerk feels is a whole
process: interpreter start, imports, the CurveZMQ-free request to the broker, the reply, exit. This benchmark starts
a real broker (``queuehall broker``, SQLite, the default hall on a simulated Tuesday morning) in its own process,
signs a clerk in at counter 1, takes tickets, then times presses of the real console script, alternating each press
with a bare ``python -c pass`` of the same environment so both see the same machine load. Between presses the
called ticket is finished through the client library (untimed), so every timed press calls a real ticket and gets
``status: ok``.

Two environments, pressed in turn:

* **installed** (the target): what a hall runs. The working tree is built into a wheel and installed, not
  editable, into a new virtual environment made from the same base interpreter; its dependencies are the ones
  already installed in this environment (a ``.pth`` line naming this environment's site-packages, so nothing is
  downloaded). Its ``python -c pass`` is the bare interpreter of that environment.
* **development**: the editable install of ``make venv``. Its import hook is loaded at every interpreter start
  (about 10 ms, in the bare ``python -c pass`` too) and finds each queuehall module through ``pathlib``, which a
  hall does not pay; ``--no-install`` measures only this one (the figures before 2026-12-07 10:00 UTC were this).

Each environment also times ``python -c "import zmq"``: the floor under any press that talks to the broker
through pyzmq (libzmq, CurveZMQ), whatever the command line does.

Target (issue #21): p50 of a press ≤ 2.5 × p50 of ``python -c pass``, in the installed environment. The CPU time
of each process (user + system, from ``getrusage``) is reported beside the wall time: on a shared machine it says
what a press costs whatever the neighbours do. Prints one JSON object.

Usage::

    .venv/bin/python bench/cli_bench.py [--presses 40] [--no-install]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import benchlib  # noqa: E402  (bench/benchlib.py, beside this script)

from queuehall.client import BrokerClient, CommandRefused  # noqa: E402
from queuehall.demo import die_with_parent, free_port  # noqa: E402

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


def installed_environment(tmp: Path) -> Path:
    """A new virtual environment with the working tree installed as a hall installs it (a wheel, not editable);
    its ``bin`` directory. Dependencies come from this environment's site-packages through a ``.pth`` line."""
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "artifacts", "results"))
    wheels = tmp / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels), str(source)],
                   check=True, capture_output=True, timeout=600)
    env = tmp / "venv"
    base = getattr(sys, "_base_executable", sys.executable)  # the interpreter this environment was made from
    subprocess.run([base, "-m", "venv", "--without-pip", str(env)], check=True, capture_output=True, timeout=120)
    python = env / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--quiet",
                    *map(str, wheels.glob("queuehall-*.whl"))], check=True, capture_output=True, timeout=600)
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # After the environment's own site-packages on sys.path, so the installed queuehall is the one imported;
    # .pth files in the named directory (the editable install's import hook) are not run.
    Path(site, "zz-queuehall-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env / "bin"


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
    ap.add_argument("--no-install", action="store_true", help="measure the development environment only")
    args = ap.parse_args()
    machine = benchlib.machine()
    port = free_port()
    endpoint = f"127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="queuehall-cli-bench-") as tmp:
        bins = {"development": Path(sys.executable).parent}
        if not args.no_install:
            bins["installed"] = installed_environment(Path(tmp))
        queuehall = str(bins["development"] / "queuehall")
        # The clerk's PIN, set as a hall sets it (only its scrypt hash goes into the database).
        subprocess.run([queuehall, "clerks", "set-pin", CLERK, "--stdin", "--db", f"sqlite:///{tmp}/hall.db"],
                       input=PIN + "\n", text=True, capture_output=True, check=True, timeout=60)
        broker = subprocess.Popen(
            [sys.executable, "-m", "queuehall.cli", "broker", "--db", f"sqlite:///{tmp}/hall.db", "--port", str(port),
             "--sim-start", "2026-12-08T09:30", "--insecure"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "broker.log"), "w"),  # noqa: SIM115
            preexec_fn=die_with_parent())
        client = BrokerClient(endpoint, timeout=2.0)
        # Per environment: the press's and the bare interpreter's wall and CPU times.
        times: dict[str, dict[str, list[float]]] = {
            name: {k: [] for k in ("press", "bare", "zmq", "press_cpu", "bare_cpu", "zmq_cpu")} for name in bins}
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
            for _ in range(args.presses * len(bins) + 2 * len(bins)):
                client.request("take_ticket", service=SERVICE)
            runs = {name: [("bare", [str(b / "python"), "-c", "pass"]),
                           ("press", [str(b / "queuehall"), "call", str(COUNTER), "--broker", endpoint]),
                           ("zmq", [str(b / "python"), "-c", "import zmq"])]
                    for name, b in bins.items()}
            # One untimed press of each first: the page cache holds the interpreter and the modules after it.
            for trio in runs.values():
                for _, argv in trio:
                    timed_run(argv)
                serve_called(client, session)
            for i in range(args.presses):
                for name, trio in runs.items():
                    for kind, argv in trio if i % 2 == 0 else reversed(trio):
                        elapsed, out = timed_run(argv)
                        if kind == "press":
                            reply = json.loads(out)
                            assert reply["status"] == "ok", reply
                        times[name][kind].append(elapsed)
                        times[name][kind + "_cpu"].append(CPU[-1])
                    serve_called(client, session)
        finally:
            client.close()
            broker.terminate()
            broker.wait(10)
    figures: dict[str, Any] = {}
    for name, t in times.items():
        press, base = summary_ms(t["press"]), summary_ms(t["bare"])
        figures[name] = {
            "queuehall_call_ms": press,
            "python_c_pass_ms": base,
            "ratio_p50": round(press["p50"] / base["p50"], 2),
            # CPU time is what the press itself costs, whatever else the machine is doing at the time.
            "queuehall_call_cpu_ms": summary_ms(t["press_cpu"]),
            "python_c_pass_cpu_ms": summary_ms(t["bare_cpu"]),
            "cpu_ratio_p50": round(statistics.median(t["press_cpu"]) / statistics.median(t["bare_cpu"]), 2),
            # The floor of any press through pyzmq: the interpreter and ``import zmq``, nothing else.
            "python_import_zmq_ms": summary_ms(t["zmq"]),
            "python_import_zmq_cpu_ms": summary_ms(t["zmq_cpu"]),
            "import_zmq_ratio_p50": round(statistics.median(t["zmq"]) / base["p50"] * 1000, 2),
        }
    target_env = "development" if args.no_install else "installed"
    result: dict[str, Any] = {
        "benchmark": "cli_call",
        "machine": machine,
        "presses": args.presses,
        "target_environment": target_env,
        **figures[target_env],  # the target's figures at the top level, as before
        "environments": figures,
        "target_ratio_p50": TARGET_RATIO,
        "met": figures[target_env]["ratio_p50"] <= TARGET_RATIO,
    }
    machine["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
