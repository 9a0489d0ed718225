# The platform's entry points. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STACK := $(PY) -m stack
UV := $(VENV)/bin/uv
# which tests `make test` runs (pytest -m expression); e.g. make test MARKERS=unit
MARKERS ?= unit or integration or e2e
PYTEST_ARGS ?=

.PHONY: help setup compose-check up down status logs lint test test-unit bench demo clean lock

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-20s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# The Python environment, from the pinned lock file, with the repository's packages (pyproject.toml) installed in
# editable mode; rebuilt when either changes.
$(VENV)/.synced: requirements/stack.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null \
	  || { echo "error: Python 3.11 is required as '$(PYTHON)' (found: $$($(PYTHON) --version 2>&1)); install python3.11 or run make PYTHON=python3.11 ..." >&2; exit 1; }
	@echo "• Python environment $(VENV) (requirements/stack.lock)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || $(PY) -m pip install -q --disable-pip-version-check uv==$$(grep -oP '^uv==\K[0-9.]+' requirements/stack.in) \
	  || { echo "error: could not install uv from PyPI; check network access to PyPI" >&2; exit 1; }
	@$(UV) pip sync -q --python $(PY) requirements/stack.lock \
	  || { echo "error: could not install requirements/stack.lock from PyPI; check network access to PyPI" >&2; exit 1; }
	@$(UV) pip install -q --no-deps --python $(PY) -e . \
	  || { echo "error: could not install the repository's packages (pyproject.toml) into $(VENV)" >&2; exit 1; }
	@touch $@

setup: $(VENV)/.synced ## install everything the stack needs (idempotent; fast when nothing changed)
	@$(STACK) setup

# Builds the docker compose plugin from its pinned Go module only when `docker compose` is missing
# (stamped like the set-up steps; ~2-4 min the first time); the unit tests validate compose the same way.
compose-check: $(VENV)/.synced ## validate docker-compose.yml with `docker compose config` (builds the compose plugin if docker lacks it)
	@$(STACK) compose-check

up: setup ## start the services in dependency order and wait until healthy (s="kafka" for some)
	@$(STACK) up $(s)

down: ## stop every service; leaves nothing listening
	@if [ -x $(PY) ] && [ -f .env ]; then $(STACK) down; else echo "nothing is running"; fi

status: ## state, pid, port and health of each service
	@$(STACK) status

logs: ## recent logs of all services, or s=<service>; f=1 follows
	@$(STACK) logs $(s) $(if $(f),--follow,)

# Lint (ruff for Python, sqlfluff for the dbt SQL) from the lint venv .tools/venvs/lint
# (requirements/lint.lock); config in pyproject.toml ([tool.ruff]) and .sqlfluff. No services needed.
LINT_BIN := .tools/venvs/lint/bin
SQL_DIRS := dbt/models dbt/macros dbt/tests
lint: setup ## ruff (Python) and sqlfluff (dbt SQL); part of make test
	@echo "• ruff"; $(LINT_BIN)/ruff check . || rc=1; \
	echo "• sqlfluff ($(SQL_DIRS))"; $(LINT_BIN)/sqlfluff lint --processes 2 --disable-progress-bar $(SQL_DIRS) || rc=1; \
	exit $${rc:-0}

# Lint first (fast; its failure fails the run, the suites still run), then every suite, each in its
# runtime's environment: the Flink job's SQL (flink venv), Iceberg and segmentation (spark venv), then
# unit/integration/e2e (main venv). The stack is started first when it is not already healthy, and
# stopped again afterwards only in that case.
test: setup ## lint, then every test suite (starts the stack if needed; stops it again if it started it)
	@rc=0; \
	$(MAKE) --no-print-directory lint || rc=1; \
	if $(STACK) status >/dev/null 2>&1; then started=; else $(STACK) up || exit 1; started=1; fi; \
	$(MAKE) --no-print-directory test-flink || rc=1; \
	$(MAKE) --no-print-directory test-spark || rc=1; \
	$(MAKE) --no-print-directory test-airflow || rc=1; \
	$(PY) -m pytest -m "$(MARKERS)" $(PYTEST_ARGS) || rc=1; \
	if [ -n "$$started" ]; then $(STACK) down || rc=1; fi; \
	exit $$rc

test-unit: $(VENV)/.synced ## unit tests only (no services)
	@$(PY) -m pytest -m unit $(PYTEST_ARGS)

# benchmarks run as modules from the repository's root (python -m benchmarks.NAME), as tests/unit/test_benchmarks.py does
BENCH_HELPERS := benchmarks/__init__.py benchmarks/results.py benchmarks/spark_venv.py
bench: setup ## run the benchmarks and print their tables (b=<name> for one, e.g. b=clickhouse_http)
	@for f in $(if $(b),benchmarks/$(b).py,$(filter-out $(BENCH_HELPERS),$(wildcard benchmarks/*.py))); do echo "== $$f"; $(PY) -m benchmarks.$$(basename $$f .py) || exit 1; done

# The platform's main job, end to end on the local stack: simulated customers and 60 days of events
# through Kafka → Flink → PostgreSQL → Debezium → ClickHouse, then the Airflow pipeline (dbt → Iceberg →
# K-Means → ClickHouse → Superset) triggered through its REST API, then what came out.
demo: up ## everything in one command: set up, start, simulate, run the pipeline in Airflow, print a summary
	@t0=$$(date +%s); \
	echo "• simulating the demo population (make generate_demo)"; $(SIM) demo -q || exit 1; \
	echo "• waiting for the stream (Flink) and CDC (Debezium → ClickHouse) to catch up"; $(SIM) wait-for-pipeline || exit 1; \
	echo "• running customer_analytics_pipeline in Airflow (REST API)"; \
	$(PY) -m stack.airflow trigger customer_analytics_pipeline --wait || exit 1; \
	$(SIM) summary || exit 1; \
	$(STACK) where; \
	echo "demo done in $$(( $$(date +%s) - t0 ))s after make up; stop everything with: make down"

clean: ## delete all platform data (.data); needs CONFIRM=yes
	@$(STACK) clean $(if $(filter yes,$(CONFIRM)),--yes,)

# each lock file = one environment (stack.in includes the ClickHouse server's .in files)
LOCKS ?= stack dbt
lock: $(VENV)/.synced ## recompile requirements/*.lock from the .in files after changing a pin
	@for env in $(LOCKS); do $(UV) pip compile -q --python-version 3.11 --generate-hashes requirements/$$env.in -o requirements/$$env.lock || exit 1; done

# ---- simulators (simulators/README.md): options through ARGS, e.g. make generate_web_events ARGS="--rate 5000 --duration 60"
# (throughput benchmark: make bench b=simulator_throughput)
ARGS ?=
SIM := $(PY) -m simulators
.PHONY: generate_customers generate_web_events generate_streaming_purchases generate_all generate_demo wait_for_pipeline demo_summary import

generate_customers: $(VENV)/.synced ## customer master data into Postgres crm.customers, with updates/deletes (ARGS="...")
	@$(SIM) customers $(ARGS)

generate_web_events: $(VENV)/.synced ## live web events into Kafka web_events (ARGS="--rate 5000 --duration 60"; "--mode backfill" for history)
	@$(SIM) events --streams web --mode live $(ARGS)

generate_streaming_purchases: $(VENV)/.synced ## live purchase events into Kafka purchase_events (ARGS="--rate 50 --duration 60")
	@$(SIM) events --streams purchases --mode live $(ARGS)

generate_all: $(VENV)/.synced ## customers, then 120 days of web + purchase history of the same population (ARGS="...")
	@$(SIM) all $(ARGS)

generate_demo: $(VENV)/.synced ## the demo's data: generate_all with its preset (400 customers, 60 days, fixed seed; ~2.5 min to drain)
	@$(SIM) demo $(ARGS)

# your own data (simulators/importing/README.md): make import MAPPING=my_mapping.yaml [ARGS="--dry-run"]
# (try it: MAPPING=simulators/importing/example/mapping.yaml ARGS=--dry-run)
MAPPING ?=
import: $(VENV)/.synced ## your CSV/Parquet customers, orders, web events through a mapping file (MAPPING=..., ARGS="--dry-run")
	@$(SIM) import $(MAPPING) $(ARGS)

wait_for_pipeline: $(VENV)/.synced ## wait until raw.* and the ClickHouse mirror hold exactly what the last run sent (ARGS="--run-id ...")
	@$(SIM) wait-for-pipeline $(ARGS)

demo_summary: $(VENV)/.synced ## events sent by the last run, and the latest segments with churn rates (ClickHouse ml.*_latest)
	@$(SIM) summary $(ARGS)

# ---- Flink streaming job (flink_jobs/, stack/flink.py): its own virtualenv .tools/venvs/flink
FLINK_PY := .tools/venvs/flink/bin/python
LOCKS += flink
FLINK_PYTEST_ARGS ?=
.PHONY: test-flink flink-submit flink-checkpoint

test-flink: setup ## the Flink job's SQL on hand-made records (local mini cluster; flink venv's pytest)
	@$(FLINK_PY) -m pytest -q -p no:cacheprovider flink_jobs/tests $(FLINK_PYTEST_ARGS)

flink-submit: setup ## submit the streaming job unless it runs (resumes from the latest retained checkpoint)
	@$(PY) -m flink_jobs.deploy submit

flink-checkpoint: $(VENV)/.synced ## print the latest retained checkpoint of the streaming job
	@$(PY) -m flink_jobs.deploy checkpoint

# ---- dbt (dbt/, dbt/README.md): staging -> intermediate -> marts in ClickHouse `analytics` from the CDC mirror `cdc`
# dbt/run.py loads .env and runs .tools/venvs/dbt/bin/dbt with dbt/ as project and profiles dir.
# Options through DBT_ARGS, e.g. make dbt_build DBT_ARGS="--vars '{snapshot_date: \"2026-11-01\"}'" or DBT_ARGS="-s customer_features+"
DBT_ARGS ?=
DBT_RUN := $(PY) dbt/run.py
.PHONY: dbt_build dbt_run dbt_test dbt_freshness dbt_docs dbt_docs_serve

dbt_build: setup ## dbt build: models (incremental where they can be) and every test (DBT_ARGS="...")
	@$(DBT_RUN) build $(DBT_ARGS)

dbt_run: setup ## dbt run: the models only (DBT_ARGS="--full-refresh" rebuilds incremental models)
	@$(DBT_RUN) run $(DBT_ARGS)

dbt_test: setup ## dbt test: data tests, unit tests, reconciliation against the CDC mirror
	@$(DBT_RUN) test $(DBT_ARGS)

dbt_freshness: setup ## dbt source freshness of the CDC mirror (warn 12 h, error 24 h; CRM 24 h / 72 h)
	@$(DBT_RUN) source freshness $(DBT_ARGS)

dbt_docs: setup ## dbt docs generate (dbt/target/index.html, catalog.json)
	@$(DBT_RUN) docs generate $(DBT_ARGS)

dbt_docs_serve: dbt_docs ## serve the dbt docs on http://127.0.0.1:8085
	@$(DBT_RUN) docs serve --host 127.0.0.1 --port 8085 --no-browser

# ---- Spark ML (spark_ml/, docs/iceberg.md): Iceberg on MinIO + K-Means segmentation; its own virtualenv .tools/venvs/spark
SPARK_PY := .tools/venvs/spark/bin/python
LOCKS += spark
SPARK_PYTEST_ARGS ?=
# options for `make batch_ml`, e.g. ML_ARGS="--synthetic 20000" (generated features) or ML_ARGS="--ground-truth path.csv"
ML_ARGS ?=
.PHONY: test-spark batch_ml

test-spark: setup ## Iceberg round trip and the segmentation job end to end (spark venv's pytest; ~4 min)
	@$(SPARK_PY) -m pytest -q -p no:cacheprovider -m "$(MARKERS)" spark_ml/tests $(SPARK_PYTEST_ARGS)

batch_ml: setup ## customer_features (ClickHouse) -> Iceberg -> Spark K-Means -> segments in Iceberg + ClickHouse ml.* (ML_ARGS="...")
	@$(SPARK_PY) -m spark_ml run $(ML_ARGS)

# ---- notebooks (notebooks/): JupyterLab with the spark venv's kernel; the batch path by hand
NOTEBOOK_PORT ?= 8888
.PHONY: notebook batch

notebook: setup ## JupyterLab on http://127.0.0.1:8888 with the spark venv (notebooks/; token = JUPYTER_TOKEN in .env)
	@JUPYTER_TOKEN="$${JUPYTER_TOKEN:-$$(sed -n 's/^JUPYTER_TOKEN=//p' .env | tail -n 1)}"; export JUPYTER_TOKEN; \
	[ -n "$$JUPYTER_TOKEN" ] || { echo "error: JUPYTER_TOKEN is not set; run make setup" >&2; exit 1; }; \
	exec .tools/venvs/spark/bin/jupyter-lab --no-browser --ip 127.0.0.1 --port $(NOTEBOOK_PORT) --notebook-dir notebooks \
		$$([ "$$(id -u)" = 0 ] && echo --allow-root)

batch: ## the batch path by hand: dbt_build, then batch_ml (DBT_ARGS="...", ML_ARGS="..." as for those)
	@$(MAKE) --no-print-directory dbt_build
	@$(MAKE) --no-print-directory batch_ml

# ---- Superset (stack/superset.py, superset/): dashboards as code; its own virtualenv .tools/venvs/superset.
# Its tests (tests/integration/test_superset.py, incl. headless Chromium) run in the main suite (`make test`).
LOCKS += superset
.PHONY: superset_apply superset_refresh

superset_apply: $(VENV)/.synced ## re-apply the dashboards bundle (superset/bundle) to the running Superset; idempotent
	@$(PY) -m stack.superset apply

superset_refresh: $(VENV)/.synced ## force-refresh every chart of the platform's dashboards (the Airflow pipeline's last task)
	@$(PY) -m stack.superset refresh

# ---- Airflow 3 (stack/airflow.py, airflow/dags): its own virtualenv .tools/venvs/airflow. The DAG integrity
# test runs in that venv; `airflow dags test` of each DAG and the REST API run are in the main suite.
AIRFLOW_PY := .tools/venvs/airflow/bin/python
LOCKS += airflow
AIRFLOW_PYTEST_ARGS ?=
DAG ?= customer_analytics_pipeline
.PHONY: test-airflow airflow_trigger

test-airflow: setup ## DAG integrity: imports, schedules, tags, retries, callbacks, no cycles (airflow venv's pytest)
	@$(AIRFLOW_PY) -m pytest -q -p no:cacheprovider -m "$(MARKERS)" airflow/tests $(AIRFLOW_PYTEST_ARGS)

airflow_trigger: $(VENV)/.synced ## trigger a DAG through Airflow's REST API and wait for it (DAG=customer_analytics_pipeline)
	@$(PY) -m stack.airflow trigger $(DAG) --wait

# ---- lint: ruff + sqlfluff (`make lint`, above), its own virtualenv .tools/venvs/lint
LOCKS += lint
