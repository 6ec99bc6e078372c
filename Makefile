# The two commands: `make run` (everything on embedded servers) and `make test` (the suite).
# Both build .venv from scratch on a machine with only Python >= 3.11 and pip.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: run test coverage lint typecheck bench clean

# Coverage floors per area (the spec asks 80 % for the cache and 85 % for monitoring; ours are
# 90 % and 85 %). Read from the .coverage file that `make test PYTEST_ARGS=--cov` leaves.
CACHE_FILES      := haetae/cache/*,agent/l1_server.py,agent/cache_host.py,control_plane/cache_ctx.py,control_plane/api/cache.py
MONITORING_FILES := agent/*,control_plane/ingest/*,control_plane/rules/*,control_plane/alerting/*,control_plane/query/*,control_plane/oncall/*,control_plane/health.py
CACHE_FLOOR      ?= 90
MONITORING_FLOOR ?= 85

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

coverage: $(VENV)/.dev-installed
	$(call floor,cache,$(CACHE_FILES),,$(CACHE_FLOOR))
	$(call floor,monitoring,$(MONITORING_FILES),agent/l1_server.py$(comma)agent/cache_host.py,$(MONITORING_FLOOR))
	@$(BIN)/coverage report | grep '^TOTAL'

comma := ,
# $(call floor,NAME,INCLUDE,OMIT,PERCENT): one line per area; fails under the floor.
define floor
	@$(BIN)/coverage report --include='$(2)' --omit='$(3)' --fail-under=$(4) > .coverage-$(1).txt; \
	rc=$$?; printf 'coverage %-10s floor %s %%: ' '$(1)' '$(4)'; grep -E '^TOTAL|fail-under' .coverage-$(1).txt; \
	rm -f .coverage-$(1).txt; exit $$rc
endef

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.dev-installed
	$(BIN)/mypy haetae agent control_plane link_analyzer dashboards

bench: $(VENV)/.bench-installed
	$(BIN)/python benchmarks/ingest_throughput.py
	$(BIN)/python benchmarks/agent_footprint.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
