# Two commands on a fresh machine: `make demo` and `make test`. Both set everything up.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NPMSTAMP := node_modules/.installed
# The real Functions Python worker (tests/host) needs Python 3.13+: a second environment, built
# from requirements-worker.txt with the first 3.13+ that tests/host/find_python.sh finds.
WORKER_VENV := .venv-worker
WPY      := $(WORKER_VENV)/bin/python
WSTAMP   := $(WORKER_VENV)/.installed
PYTHON_WORKER ?= $(shell sh tests/host/find_python.sh)

.PHONY: demo test worker-test bench install clean lint

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is needed, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# Azurite (the Azure Storage emulator) for the table and queue tests, pinned in package-lock.json.
$(NPMSTAMP): package.json package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "make test needs npm (Node.js 20 or later) to install Azurite, the Azure Storage emulator the tests run against: install Node.js (e.g. apt install nodejs npm, brew install node, or nodejs.org), then run make test again" >&2; exit 1; }
	npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	touch $@

$(WSTAMP): requirements.txt requirements-worker.txt
	$(PYTHON_WORKER) -m venv --clear $(WORKER_VENV)
	$(WPY) -m pip install --quiet --disable-pip-version-check -r requirements-worker.txt
	touch $@

install: $(STAMP) $(NPMSTAMP)

demo: $(STAMP)
	$(PY) -m demo

test: $(STAMP) $(NPMSTAMP)
	$(PY) -m pytest -q
	@$(MAKE) --no-print-directory worker-test

# The app loaded, indexed and invoked by the real worker library (docs/functions.md).
ifeq ($(strip $(PYTHON_WORKER)),)
worker-test:
	@echo "tests/host skipped: no Python 3.13+ found (on PATH or under pyenv); the Functions worker library needs it"
else
worker-test: $(WSTAMP) $(NPMSTAMP)
	$(WPY) -m pytest -q tests/host
endif

bench: $(STAMP) $(NPMSTAMP)
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) $(WORKER_VENV) node_modules .triage .pytest_cache
