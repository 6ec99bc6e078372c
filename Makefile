# The two commands: `make run` (everything on embedded servers) and `make test` (the suite).
# Both build .venv from scratch on a machine with only Python >= 3.11 and pip.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: run test lint typecheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.run-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[embedded]'
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.run-installed

# Peers the benchmarks compare against (SAQ, cashews, aiocache, Locust): not needed by the tests.
$(VENV)/.bench-installed: pyproject.toml $(VENV)/.dev-installed
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $@

run: $(VENV)/.run-installed
	$(BIN)/haetae up

test: $(VENV)/.dev-installed
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.dev-installed
	$(BIN)/mypy haetae agent control_plane link_analyzer

bench: $(VENV)/.bench-installed
	$(BIN)/python benchmarks/ingest_throughput.py
	$(BIN)/python benchmarks/agent_footprint.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
