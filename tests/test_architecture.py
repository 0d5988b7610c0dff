"""The layering the project promises, checked on the source: a change that breaks it fails here."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PURE_ENGINE = ["broker/engine.py", "broker/model.py", "broker/hours.py", "broker/config.py", "queuehall/errors.py",
               "queuehall/clock.py", "queuehall/protocol.py", "queuehall/simulation.py"]


def imports(path: Path) -> set[str]:
    """Top-level package names a module imports (anywhere in it, including inside functions).

    Our own parts are named by their place in the namespace: ``queuehall.broker`` rather than ``queuehall``.
    """
    found: set[str] = set()

    def add(name: str) -> None:
        parts = name.split(".")
        found.add(".".join(parts[:2]) if parts[0] == "queuehall" and len(parts) > 1 else parts[0])

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            add(node.module)
    return found


def test_the_engine_and_the_protocol_touch_no_sockets_no_qt_no_sql() -> None:
    for rel in PURE_ENGINE:
        bad = imports(ROOT / rel) & {"zmq", "PySide6", "sqlalchemy", "escpos"}
        assert not bad, f"{rel} imports {bad}"


def test_the_screens_never_touch_the_database() -> None:
    for package in ("kiosk", "counter", "display"):
        for path in (ROOT / package).rglob("*.py"):
            assert "sqlalchemy" not in imports(path), path
            assert not (imports(path) & {"queuehall.broker"}) or path.name == "main.py", \
                f"{path} reaches into the broker; screens talk to it only through queuehall.qtlink"


def test_only_the_protocol_module_serialises_messages() -> None:
    """Modules holding sockets never build JSON themselves: queuehall/protocol.py does."""
    for path in [*(ROOT / "broker").glob("*.py"), *(ROOT / "queuehall").glob("*.py"),
                 *(ROOT / "kiosk").glob("*.py"), *(ROOT / "counter").glob("*.py"), *(ROOT / "display").glob("*.py")]:
        if "zmq" in imports(path):
            assert "json" not in imports(path), f"{path} holds sockets and serialises JSON itself"
