"""The layering the project promises.

The layers themselves are import-linter contracts in pyproject.toml (run by ``make test``); these tests check that
the contracts hold on the sources and that they can fail, and the one rule import-linter cannot express.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def imports(path: Path) -> set[str]:
    """Top-level package names a module imports (anywhere in it, including inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_only_the_protocol_module_serialises_messages() -> None:
    """Modules holding sockets never build JSON themselves: queuehall/protocol.py does."""
    for folder in ("broker", "queuehall", "kiosk", "counter", "display"):
        for path in (ROOT / folder).glob("*.py"):
            if "zmq" in imports(path):
                assert "json" not in imports(path), f"{path} holds sockets and serialises JSON itself"


def _lint(mirror: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                          cwd="/", env={"PYTHONPATH": str(mirror), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)


def _mirror(tmp_path: Path) -> Path:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import namespace_tree
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    return namespace_tree.build(tmp_path / "namespace")


@pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is a dev dependency: pip install -e '.[dev]'")
def test_the_layer_contracts_hold_and_can_fail(tmp_path: Path) -> None:
    mirror = _mirror(tmp_path)
    ok = _lint(mirror)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # A socket in the engine, reached indirectly through the client library, breaks two contracts.
    engine = mirror / "queuehall" / "broker" / "engine.py"
    engine.write_text(engine.read_text(encoding="utf-8") + "\nimport queuehall.client  # noqa\n", encoding="utf-8")
    bad = _lint(mirror)
    assert bad.returncode != 0
    assert "queuehall.broker.engine is not allowed to import zmq" in bad.stdout, bad.stdout
    assert "queuehall.client" in bad.stdout
    shutil.rmtree(mirror)
