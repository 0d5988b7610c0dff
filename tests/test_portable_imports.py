"""Client code imports on Windows: no POSIX-only call runs at import time.

Kiosks, counters and displays often run on Windows PCs. A module that calls ``os.getuid()`` (or any
other POSIX-only function) at import cannot even start there: the kiosk did, in kiosk/printing.py.
This test imports every client module in a fresh interpreter from which the POSIX-only parts of
``os`` and ``signal`` are removed and the POSIX-only modules cannot be imported, which is what a
Windows Python looks like to that code.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

# os attributes that Windows' Python does not have (the ones code is tempted to call).
POSIX_ONLY_OS = (
    "getuid", "geteuid", "getgid", "getegid", "getgroups", "setuid", "setgid", "getpgid", "setpgid", "getpgrp",
    "setsid", "getsid", "killpg", "fork", "forkpty", "wait3", "wait4", "WNOHANG", "uname", "nice", "sync",
    "getloadavg", "sched_getaffinity", "chown", "lchown", "fchown", "fchmod", "mkfifo", "pipe2", "sysconf",
    "pathconf", "statvfs", "getresuid", "initgroups", "openpty", "ttyname", "posix_spawn",
)
# signal attributes that Windows' Python does not have.
POSIX_ONLY_SIGNAL = (
    "SIGKILL", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGCHLD", "SIGSTOP", "SIGCONT",
    "SIGPIPE", "SIGTSTP", "alarm", "setitimer", "getitimer", "pthread_kill", "pthread_sigmask", "siginterrupt",
    "sigwait", "sigpending",
)
POSIX_ONLY_MODULES = ("fcntl", "pwd", "grp", "termios", "resource", "pty", "tty", "posix_ipc")

# The client side: everything under queuehall/ except the broker, and the three screens.
CLIENT_PACKAGES = ("queuehall", "queuehall.kiosk", "queuehall.counter", "queuehall.display")

SCRIPT = textwrap.dedent("""
    import importlib, os, pkgutil, signal, sys, traceback

    # Pass 1, on this POSIX Python: find the client modules and import them, so the standard library and
    # the third-party packages they use are loaded as they are here (on Windows those take their own
    # Windows branches, which a stripped POSIX Python cannot imitate).
    environ = dict(os.environ)
    modules = []
    for pkg_name in {packages!r}:
        pkg = importlib.import_module(pkg_name)
        for info in pkgutil.iter_modules(pkg.__path__, pkg_name + "."):
            if not info.ispkg and not info.name.startswith("queuehall.broker"):
                modules.append(info.name)
    for name in modules:
        importlib.import_module(name)

    # Pass 2: forget our modules (and whatever they set in the environment), take POSIX away, import again.
    for name in [m for m in sys.modules if m == "queuehall" or m.startswith("queuehall.")]:
        del sys.modules[name]
    os.environ.clear()
    os.environ.update(environ)
    for name in {os_names!r}:
        if hasattr(os, name):
            delattr(os, name)
    for name in {signal_names!r}:
        if hasattr(signal, name):
            delattr(signal, name)
    for name in {modules_!r}:
        sys.modules[name] = None  # import raises ImportError, as on Windows
    failed = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:
            failed.append(name + ": " + traceback.format_exc(limit=-2).strip().replace("\\n", " | "))
    print(len(modules), "modules:", " ".join(modules))
    print("\\n".join(failed))
    sys.exit(1 if failed else 0)
""").format(os_names=POSIX_ONLY_OS, signal_names=POSIX_ONLY_SIGNAL, modules_=POSIX_ONLY_MODULES,
            packages=CLIENT_PACKAGES)


def test_every_client_module_imports_without_posix_only_calls() -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    env.pop("ESCPOS_CAPABILITIES_PICKLE_DIR", None)  # the kiosk must find its pickle folder on its own
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, f"modules that do not import without POSIX:\n{proc.stdout}\n{proc.stderr[-2000:]}"
    listed = proc.stdout.split("\n")[0].split()
    assert int(listed[0]) >= 20, proc.stdout  # the walk found the screens' modules, not just a few
    for module in ("queuehall.kiosk.printing", "queuehall.kiosk.window", "queuehall.counter.window",
                   "queuehall.display.window", "queuehall.demo", "queuehall.cli", "queuehall.client"):
        assert module in listed
