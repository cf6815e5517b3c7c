# Each target bootstraps its own virtualenv from plain python3. Dependencies are installed
# again only when pyproject.toml changes (the stamp files in .venv/ are older than it).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEV_STAMP := $(VENV)/.installed-dev
CLI_STAMP := $(VENV)/.installed-cli

.PHONY: demo test soak lint typecheck check bench clean

# Test processes (pytest-xdist), each with its own servers: twice the cores, as the tests
# mostly wait on servers, subprocesses and disks (2 cores: 5:28 with 2 workers, 4:33 with 4).
WORKERS ?= $(shell $(PY) -c "import os; print(2 * (os.cpu_count() or 1))")

$(BIN)/activate:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(DEV_STAMP): pyproject.toml | $(BIN)/activate
	$(BIN)/python -m pip install --quiet -e '.[aws,cli,web,test]'
	touch $@ $(CLI_STAMP)

$(CLI_STAMP): pyproject.toml | $(BIN)/activate
	$(BIN)/python -m pip install --quiet -e '.[cli]'
	touch $@

demo: $(CLI_STAMP)  ## install and run the quickstart on the local file store
	$(BIN)/python examples/quickstart.py

test: $(DEV_STAMP)  ## install the test dependencies (when pyproject.toml changed) and run the suite
	$(BIN)/python -m pytest -n $(WORKERS) --dist worksteal

soak: $(DEV_STAMP)  ## the suite with every stress test at its full size (tests/soak.py)
	TTFLOW_SOAK=1 $(BIN)/python -m pytest -n $(WORKERS) --dist worksteal

lint: $(DEV_STAMP)
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .

typecheck: $(DEV_STAMP)
	$(BIN)/python -m mypy

check: test lint typecheck

bench:  ## every scenario against ttflow 0.6.3 and DBOS, in its own benchmarks/.venv-bench
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
