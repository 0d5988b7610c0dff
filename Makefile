# queuehall developer entry points. `make test` is what CI runs (.ci/run).
#
#   make setup   install (root) or check (others) the Debian packages: scripts/setup-system.sh
#   make venv    .venv with `pip install -e '.[dev]'` (redone only when pyproject.toml changes)
#   make test    setup + venv + throwaway PostgreSQL (scripts/pg.sh) + pytest + ruff + import-linter + mypy
#   make lint    ruff check, the import-linter layer contracts and mypy (pyproject.toml)
#   make demo    run `queuehall demo` (headless into demo-out/ when there is no display)
#   make bench   run every benchmark (bench/run.py), keep their JSON in bench/results/, write docs/benchmarks.md
#   make bench-quick  the same as a smoke run of a few minutes
#   make clean   remove caches and generated output (keeps .venv); `make distclean` also removes .venv
#
# Extra pytest arguments: make test PYTEST_ARGS='-k ticket -x'

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# --durations: CI runs on 2 cores, so the slowest tests are listed in every run.
PYTEST_ARGS ?= --durations=10

.PHONY: setup venv test lint lint-imports typecheck demo bench bench-quick clean distclean

setup:
	@scripts/setup-system.sh

venv: $(STAMP)

# The stamp is newer than pyproject.toml after a successful install, so the install reruns only when the
# dependencies may have changed.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
	  || { echo "make venv: $(PYTHON) is $$($(PYTHON) -V 2>&1); queuehall needs Python >= 3.11" \
	       "(use: make PYTHON=python3.11 ...)" >&2; exit 1; }
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q -e '.[dev]'
	@touch $@

# Each run gets its own PostgreSQL (own state directory, own port), so parallel `make test` runs and a server
# started by hand with scripts/pg.sh never stop each other's; it is stopped and removed afterwards, also on
# failure or Ctrl-C. ruff runs even when pytest fails so one run reports both.
test: setup venv
	@export QUEUEHALL_PG_DIR=$$(mktemp -d /tmp/queuehall-pg-test.XXXXXX); \
	trap 'scripts/pg.sh stop; rm -rf "$$QUEUEHALL_PG_DIR"' EXIT; trap 'exit 130' INT TERM; \
	url=$$(scripts/pg.sh start); \
	rc=0; \
	QT_QPA_PLATFORM=offscreen QUEUEHALL_TEST_PG_URL="$$url" $(VPY) -m pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc != 0 ]; then echo "make test: pytest failed (exit $$rc)" >&2; fi; \
	$(VENV)/bin/ruff check . || { echo "make test: ruff check failed" >&2; rc=1; }; \
	$(MAKE) --no-print-directory lint-imports || { echo "make test: import-linter contracts broken" >&2; rc=1; }; \
	$(MAKE) --no-print-directory typecheck || { echo "make test: mypy found type errors" >&2; rc=1; }; \
	exit $$rc

lint: venv lint-imports typecheck
	$(VENV)/bin/ruff check .

# mypy on the same mirror (pyproject.toml [tool.mypy]); paths in its messages are the installed ones.
typecheck: venv
	@root=$$($(VPY) scripts/namespace_tree.py); \
	cd / && MYPYPATH="$$root" $(CURDIR)/$(VENV)/bin/mypy --config-file $(CURDIR)/pyproject.toml \
	  --cache-dir $(CURDIR)/.mypy_cache

# import-linter follows the installed namespace, which an editable install builds with an import hook it cannot
# see: it checks a mirror of the sources at their installed paths, from outside the repository root.
lint-imports: venv
	@root=$$($(VPY) scripts/namespace_tree.py); \
	cd / && PYTHONPATH="$$root" $(CURDIR)/$(VENV)/bin/lint-imports --config $(CURDIR)/pyproject.toml --no-cache

demo: setup venv
	@if [ -n "$${DISPLAY:-}$${WAYLAND_DISPLAY:-}" ]; then \
	  $(VENV)/bin/queuehall demo; \
	else \
	  echo "make demo: no display, running headless into demo-out/"; \
	  QT_QPA_PLATFORM=offscreen $(VENV)/bin/queuehall demo --headless --out demo-out; \
	fi

bench: venv
	QT_QPA_PLATFORM=offscreen $(VPY) bench/run.py

bench-quick: venv
	QT_QPA_PLATFORM=offscreen $(VPY) bench/run.py --quick

clean:
	rm -rf demo-out tests/artifacts .pytest_cache .ruff_cache .hypothesis build dist *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
