# Two commands for a newcomer: `make up` (run it) and `make test` (test it). Everything else is detail.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
export DAGSPEC_HOME ?= $(CURDIR)/.local/data
export AIRFLOW_HOME ?= $(CURDIR)/.local/airflow

.PHONY: up down install lint test test-fast bench bench-parse bench-validate bench-extract bench-ml bench-objects bench-ops bench-airflow-range bench-warehouse bench-window bench-subdaily bench-range schema sample-data clean

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q uv==$(UV_VERSION)

# The stamp makes `make up` / `make test` reinstall only when the lock or the package metadata changes.
$(VENV)/.installed: requirements.txt pyproject.toml | $(BIN)/uv
	@echo "installing pinned requirements into $(VENV) ..."
	@time VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/uv pip install -q --compile-bytecode -r requirements.txt -e .
	@# setuptools leaves include/dagspec.egg-info, which the editable path puts on sys.path: a second copy of the
	@# package's metadata, and Airflow would register the plugin's entry point twice (a plugin import error).
	@rm -rf include/*.egg-info
	@touch $@

install: $(VENV)/.installed
	@# uv compiles site-packages, not the editable project; with PYTHONDONTWRITEBYTECODE set (as on these
	@# machines) every Airflow task process would otherwise recompile dagspec from source (~20 ms per task).
	@$(BIN)/python -m compileall -q include/dagspec dags plugins >/dev/null

up: install
	$(BIN)/python scripts/dev_stack.py up

down:
	$(BIN)/python scripts/dev_stack.py down

# ruff (pinned in the lock; rules in pyproject.toml) over every Python folder of the project.
lint: install
	$(BIN)/ruff check include tests dags bench scripts plugins

test: install
	scripts/install_chromium.sh  # headless browser for the Definitions page test
	$(BIN)/python -m pytest -ra --durations=15 tests

test-fast: install
	$(BIN)/python -m pytest -ra -m "not e2e" tests

schema: install
	$(BIN)/dagspec schema --write

sample-data: install
	$(BIN)/dagspec sample-data

clean:
	rm -rf .local test-artifacts

# Every benchmark, one after another (each prints its own table of ratios); logs in bench-results/.
bench: install
	@mkdir -p bench-results
	@for b in parse objects validate ml extract ops; do \
	  echo "== bench-$$b"; $(BIN)/python bench/$${b}_bench.py 2>&1 | tee bench-results/$$b.log || exit 1; \
	done

# DagBag parse time and memory: dagspec vs dag-factory 1.1.0 (in its own venv) vs a plain loader.
bench-parse: install
	$(BIN)/python bench/parse_bench.py

# An hourly pipeline's day (24 partitions) vs the same rows as one daily partition, whole processes.
bench-subdaily: install
	$(BIN)/python bench/subdaily_bench.py

# A year of orders_daily day by day against --chunk 31 (whole processes), and an hourly day with batch_size 24.
bench-range: install
	$(BIN)/python bench/range_bench.py

bench-validate: install
	$(BIN)/python bench/validate_bench.py

# Extract lineitem (TPC-H SF1) from PostgreSQL and MariaDB: dagspec vs pandas, ConnectorX (own venv), DuckDB, COPY.
bench-extract: install
	$(BIN)/python bench/extract_bench.py

bench-ml: install
	$(BIN)/python bench/ml_bench.py

# A CSV export in S3 (moto server) into a Parquet partition: dagspec vs pandas and whole-file pyarrow; memory at 2x.
bench-objects: install
	$(BIN)/python bench/objects_bench.py

# The DuckDB file vs DuckLake (SQLite / PostgreSQL catalog): a run, a run beside a reader, 2 and 4 concurrent publishes.
bench-warehouse: install
	$(BIN)/python bench/warehouse_bench.py

# One day of TPC-H lineitem out of PostgreSQL (one indexed query) against psql's COPY of the same rows.
bench-window: install
	$(BIN)/python bench/window_bench.py

# Per-task scheduling overhead and 30-day backfill wall time: LocalExecutor vs CeleryExecutor (2 workers).
bench-ops: install
	$(BIN)/python bench/ops_bench.py

# Day by day against --chunk through Airflow's LocalExecutor (60 dates; --days 365 for the year).
bench-airflow-range: install
	$(BIN)/python bench/airflow_range_bench.py $(ARGS)
