# Two commands: `make run` and `make test`. Each sets up everything it needs on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DB ?= var/notebazaar.db
HOST ?= 127.0.0.1
PORT ?= 8000
TORCH := torch==2.13.0
# PyTorch's own index of CPU-only wheels. On Linux the default index serves torch built for CUDA,
# which pulls gigabytes of GPU libraries this project never uses.
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
CHROMIUM ?= /usr/bin/chromium
APT_GET ?= apt-get

.PHONY: run test setup browser lint clean

setup: $(STAMP)

# torch is pinned and installed first, as the CPU build from PyTorch's CPU index where that index
# answers, else from the default index (a machine that reaches only a package mirror).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --timeout 15 --retries 0 --index-url $(TORCH_CPU_INDEX) "$(TORCH)" || { \
		echo "PyTorch's CPU wheel index ($(TORCH_CPU_INDEX)) did not answer: installing $(TORCH) from the default index"; \
		$(BIN)/python -m pip install --quiet "$(TORCH)"; }
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

# Debian's Chromium for the Playwright browser tests (Playwright's own browser download fails here).
# The tests launch /usr/bin/chromium exactly, so that is the path checked. Installing it needs root
# and apt-get; where either is missing, or the install fails, the browser tests are skipped (pytest
# says so in its summary) and the rest of the suite runs.
browser:
	@if [ -x "$(CHROMIUM)" ]; then exit 0; fi; \
	skip="the browser tests will be skipped (pytest lists them as skipped)"; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "Chromium is not installed at $(CHROMIUM) and installing it needs root: $$skip. Run 'sudo make browser' to install it."; \
	elif ! command -v $(APT_GET) >/dev/null 2>&1; then \
		echo "Chromium is not installed at $(CHROMIUM) and there is no apt-get to install it with: $$skip."; \
	else \
		($(APT_GET) update -qq || true) && DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq chromium >/dev/null \
		|| echo "Installing Chromium with apt-get failed: $$skip."; \
	fi

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
