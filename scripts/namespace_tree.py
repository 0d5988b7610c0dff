"""Mirror the source folders into build/namespace/ as the one installed ``queuehall`` package.

The repository keeps the card's layout (broker/, kiosk/, ... at the top) and setuptools maps them into the
``queuehall`` namespace (pyproject.toml ``[tool.setuptools.package-dir]``). Editable installs reach those
folders through an import hook that mypy and import-linter cannot follow, so they check this mirror instead:
the same ``.py`` files at the paths they are installed at. Usage: ``python scripts/namespace_tree.py`` prints
the mirror's root (to put on ``MYPYPATH`` / ``PYTHONPATH``).
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "namespace"


def package_dirs() -> dict[str, Path]:
    """Installed package name -> source folder, from pyproject.toml."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    mapping = setuptools.get("package-dir", {})
    return {name: ROOT / mapping.get(name, name.replace(".", "/")) for name in setuptools["packages"]
            if name.count(".") <= 1}


def build(out: Path = OUT) -> Path:
    """(Re)write the mirror under ``out`` and return its root."""
    shutil.rmtree(out, ignore_errors=True)
    for name, src in package_dirs().items():
        dest = out.joinpath(*name.split("."))
        for path in src.rglob("*.py"):
            rel = path.relative_to(src)
            # Subpackages mapped on their own (queuehall.broker inside queuehall/) are copied from their own folder.
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    return out


if __name__ == "__main__":
    print(build(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else OUT))
    sys.exit(0)
