"""The documentation stands on its own: every link points into the repository, at a file that exists.

docs/stack.md once cited a research note by an absolute path on the machine it was written on;
someone with only the repository could not read it. The facts now live in docs/stack-check.md.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
# A path of the machine a page was written on (the work tree, a shared notes folder, a home folder).
FOREIGN_PATH = re.compile(r"(?<![\w.])(/work/|/home/|/root/|\.\./shared/|/mnt/)")


def test_no_page_cites_a_path_outside_the_repository() -> None:
    found = [f"{page.relative_to(ROOT)}:{n}: {line.strip()}" for page in PAGES
             for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1)
             if FOREIGN_PATH.search(line)]
    assert not found, "\n".join(found)


def test_every_relative_link_resolves_inside_the_repository() -> None:
    broken = []
    for page in PAGES:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue  # a URL or an anchor on the same page
            path = (page.parent / target.split("#")[0]).resolve()
            if not path.is_relative_to(ROOT) or not path.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, broken
