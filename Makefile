# Each target bootstraps its own virtualenv from plain python3.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck check bench clean

$(BIN)/activate:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

demo: $(BIN)/activate  ## install and run the quickstart on the local file store
	$(BIN)/python -m pip install --quiet -e '.[cli]'
	$(BIN)/python examples/quickstart.py

test: $(BIN)/activate  ## install the test dependencies and run the whole suite
	$(BIN)/python -m pip install --quiet -e '.[aws,cli,web,test]'
	$(BIN)/python -m pytest

lint: $(BIN)/activate
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .

typecheck: $(BIN)/activate
	$(BIN)/python -m mypy

check: test lint typecheck

bench:  ## every scenario against ttflow 0.6.3 and DBOS, in its own benchmarks/.venv-bench
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
