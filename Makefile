# Two commands for a newcomer: `make up` (run it) and `make test` (test it). Everything else is detail.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
export DAGSPEC_HOME ?= $(CURDIR)/.local/data
export AIRFLOW_HOME ?= $(CURDIR)/.local/airflow

.PHONY: up down install test test-fast bench schema sample-data clean

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q uv==$(UV_VERSION)

# The stamp makes `make up` / `make test` reinstall only when the lock or the package metadata changes.
$(VENV)/.installed: requirements.txt pyproject.toml | $(BIN)/uv
	@echo "installing pinned requirements into $(VENV) ..."
	@time VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/uv pip install -q --compile-bytecode -r requirements.txt -e .
	@touch $@

install: $(VENV)/.installed

up: install
	$(BIN)/python scripts/dev_stack.py up

down:
	$(BIN)/python scripts/dev_stack.py down

test: install
	$(BIN)/python -m pytest -ra --durations=15 tests

test-fast: install
	$(BIN)/python -m pytest -ra -m "not e2e" tests

schema: install
	$(BIN)/dagspec schema --write

sample-data: install
	$(BIN)/dagspec sample-data

clean:
	rm -rf .local test-artifacts
