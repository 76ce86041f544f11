# Two commands on a fresh machine: `make demo` and `make test`. Both set everything up.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NPMSTAMP := node_modules/.installed

.PHONY: demo test bench install clean lint

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is needed, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# Azurite (the Azure Storage emulator) for the table and queue tests, pinned in package-lock.json.
$(NPMSTAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	touch $@

install: $(STAMP) $(NPMSTAMP)

demo: $(STAMP)
	$(PY) -m demo

test: $(STAMP) $(NPMSTAMP)
	$(PY) -m pytest -q

bench: $(STAMP) $(NPMSTAMP)
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) node_modules .triage .pytest_cache
