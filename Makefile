# Two commands: `make run` and `make test`. Each sets up everything it needs on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DB ?= var/notebazaar.db
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test setup browser lint clean

setup: $(STAMP)

# torch is pinned and installed first: an unpinned torch pulls gigabytes of CUDA packages.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

# Debian's Chromium for the Playwright browser tests (Playwright's own browser download fails here).
# The tests launch /usr/bin/chromium exactly, so that is the path checked.
browser:
	@test -x /usr/bin/chromium || { \
		(apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

run: setup
	$(BIN)/notebazaar serve --db $(DB) --host $(HOST) --port $(PORT) --demo

test: setup browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 2 tests

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
