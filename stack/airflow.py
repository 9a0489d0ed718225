"""Airflow 3: api-server, scheduler, dag-processor and triggerer under supervisord (LocalExecutor).

Airflow runs from its own virtualenv (.tools/venvs/airflow, requirements/airflow.lock), configured only
through AIRFLOW__* variables set here (no hand-edited airflow.cfg); AIRFLOW_HOME (logs, the password
file) is DATA_DIR/airflow and the DAGs are the repo's airflow/dags. Metadata lives in PostgreSQL: the
database AIRFLOW_DB owned by the role POSTGRES_AIRFLOW_USER, both created by sql/postgres/roles.sql
(PostgreSQL's provisioning). Before the api-server's first start, `airflow db migrate` (idempotent)
runs and the simple auth manager's password file is written from AIRFLOW_ADMIN_USER/PASSWORD.

Health comes from the api-server's /api/v2/monitor/health: the metadatabase for the api-server, and
the scheduler, dag-processor and triggerer heartbeats it reports for the other three.

`python -m stack.airflow cli <airflow args>` runs Airflow's own CLI with that configuration.
`python -m stack.airflow trigger <dag> [--wait]` triggers a DAG run through the REST API (JWT from
/auth/token) and, with --wait, prints task progress until the run ends; non-zero with one line on failure.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

import requests

from platform_common.config import REPO, TOOLS, Settings
from platform_common.contracts import SPARK_POOL
from platform_common.errors import StackError
from platform_common.net import get_json
from stack.service import Service

VENV = TOOLS / "venvs" / "airflow"
AIRFLOW = VENV / "bin" / "airflow"
DAGS = REPO / "airflow" / "dags"
HOST = "127.0.0.1"
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"


def endpoints(settings: Settings) -> dict[str, str]:
    """The platform's endpoints (no secrets): what streaming_health checks, and ClickHouse's address, which
    cosmos reads from dbt/profiles.yml in-process for its lineage metadata (dbt itself gets .env via dbt/run.py)."""
    return {"KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers, "CONNECT_URL": settings.connect_url,
            "FLINK_REST_URL": settings.flink_rest_url, "CLICKHOUSE_HOST": settings.clickhouse_host,
            "CLICKHOUSE_PORT": str(settings.clickhouse_port)}


def url(settings: Settings) -> str:
    return f"http://{HOST}:{settings.airflow_port}"


def home(settings: Settings) -> Path:
    return (settings.data_dir / "airflow").resolve()


def _fernet_key(settings: Settings) -> str:
    # Fernet wants 32 url-safe base64 bytes; .env's generated secrets are shorter, so derive one
    digest = hashlib.sha256(f"airflow-fernet:{settings.airflow_secret_key}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


def _pg_url(settings: Settings, scheme: str, db: str) -> str:
    user, password = quote(settings.postgres_airflow_user, safe=""), quote(settings.postgres_airflow_password, safe="")
    return f"{scheme}://{user}:{password}@{settings.postgres_host}:{settings.postgres_port}/{db}"


# Airflow's behaviour, the same in every deployment: docker-compose.yml's airflow environment repeats it
# (compose cannot read Python) and tests/unit/test_compose.py fails when the two differ. Addresses, folders
# and secrets differ per deployment and are set in environment() below.
SHARED = {
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
    # the DAGs are the platform's schedule: active as soon as they are parsed
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
    # cosmos lists the dbt project (dbt ls, cached) while the DAG file is parsed
    "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "180",
    "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": "240",
    "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
    "AIRFLOW__API__WORKERS": "1",
    "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",  # it would call an outside metrics endpoint
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "60",
    "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "120",
}


def environment(settings: Settings) -> dict[str, str]:
    """Airflow's whole configuration, the same for all four components and `airflow dags test`."""
    base = url(settings)
    return {
        **SHARED,
        "AIRFLOW_HOME": str(home(settings)),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        # 2 cores: a few task processes at once; Spark tasks also share the 1-slot `spark` pool
        "AIRFLOW__CORE__PARALLELISM": str(settings.airflow_parallelism),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(settings.airflow_parallelism),
        "AIRFLOW__CORE__FERNET_KEY": _fernet_key(settings),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{settings.airflow_admin_user}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home(settings) / "passwords.json"),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": _pg_url(settings, "postgresql+psycopg2", settings.airflow_db),
        "AIRFLOW__API__HOST": HOST,
        "AIRFLOW__API__PORT": str(settings.airflow_port),
        "AIRFLOW__API__BASE_URL": base,
        "AIRFLOW__API__SECRET_KEY": settings.airflow_secret_key,
        "AIRFLOW__API_AUTH__JWT_SECRET": settings.airflow_jwt_secret,
        # tasks write alerts and incidents through this connection (the same least-privilege role)
        "AIRFLOW_CONN_PLATFORM_POSTGRES": _pg_url(settings, "postgres", settings.postgres_db),
        **endpoints(settings),
        # optional e-mail alerts (.env.example): passed on only when set
        **{name: value for name, value in (("ALERT_EMAIL_TO", settings.alert_email_to),
                                           ("AIRFLOW_CONN_SMTP_DEFAULT", settings.airflow_conn_smtp_default))
           if value},
    }


def cli(settings: Settings, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the `airflow` command line of the airflow venv with the stack's configuration."""
    if not AIRFLOW.exists():
        raise StackError(f"Airflow is not installed at {AIRFLOW}; run `make setup` (builds it from requirements/airflow.lock)")
    return subprocess.run([str(AIRFLOW), *args], env={**os.environ, **environment(settings)}, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def prepare(settings: Settings) -> None:
    """Before the api-server starts: the admin's password file and the metadata schema (idempotent)."""
    home(settings).mkdir(parents=True, exist_ok=True)
    passwords = home(settings) / "passwords.json"
    passwords.write_text(json.dumps({settings.airflow_admin_user: settings.airflow_admin_password}))
    passwords.chmod(0o600)
    result = cli(settings, "db", "migrate")
    if result.returncode != 0:
        last = ([line for line in (result.stderr + result.stdout).splitlines() if line.strip()] or ["?"])[-1]
        raise StackError(f"`airflow db migrate` failed: {last.strip()[:300]}")


def provision(settings: Settings) -> None:
    """Once the api-server is healthy: the 1-slot pool that serialises Spark tasks (idempotent)."""
    result = cli(settings, "pools", "set", SPARK_POOL, "1", "one Spark job at a time (2-core machine)")
    if result.returncode != 0:
        raise StackError(f"`airflow pools set {SPARK_POOL}` failed: {(result.stderr or result.stdout).strip()[-300:]}")


def health(settings: Settings) -> dict | None:
    # generous: the api-server answers the scheduler's execution API calls too, and can be slow to reply
    return get_json(f"{url(settings)}/api/v2/monitor/health", timeout=10)


def _component_healthy(settings: Settings, component: str) -> bool:
    info = health(settings) or {}
    return (info.get(component) or {}).get("status") == "healthy"


def _service(settings: Settings, name: str, command: list[str], component: str, **kwargs) -> Service:
    return Service(
        name=f"airflow-{name}",
        port=kwargs.pop("port", 0),  # 0: listens on nothing (the log servers are off: the api-server reads the files)
        port_setting=kwargs.pop("port_setting", "-"),
        url=kwargs.pop("url", f"{url(settings)}/api/v2/monitor/health"),
        command=[str(AIRFLOW), *command],
        healthy=lambda: _component_healthy(settings, component),
        environment=environment(settings),
        stop_wait_seconds=60,
        **kwargs,
    )


def service(settings: Settings) -> Service:
    port = settings.airflow_port
    return _service(settings, "api-server", ["api-server", "--host", HOST, "--port", str(port)], "metadatabase",
                    port=port, port_setting="AIRFLOW_PORT", url=url(settings), depends_on=("postgres",),
                    prepare=lambda: prepare(settings), provision=lambda: provision(settings),
                    details=lambda: f"user {settings.airflow_admin_user}, password: AIRFLOW_ADMIN_PASSWORD in .env")


def _scheduler(settings: Settings) -> Service:
    # the scheduler runs streaming_health at once: start it only after what that DAG checks and repairs,
    # and after the Spark Connect server the pipeline's segment task runs on
    return _service(settings, "scheduler", ["scheduler", "--skip-serve-logs"], "scheduler",
                    depends_on=("airflow-api-server", "flink-taskmanager", "cdc-sink", "minio", "spark"))


def _dag_processor(settings: Settings) -> Service:
    return _service(settings, "dag-processor", ["dag-processor"], "dag_processor", depends_on=("airflow-api-server",))


def _triggerer(settings: Settings) -> Service:
    return _service(settings, "triggerer", ["triggerer", "--skip-serve-logs"], "triggerer",
                    depends_on=("airflow-api-server",))


# stack/services.py lists modules with a `service(settings)`: each component is its own entry
scheduler = SimpleNamespace(service=_scheduler)
dag_processor = SimpleNamespace(service=_dag_processor)
triggerer = SimpleNamespace(service=_triggerer)


# ---- REST API client (the demo's and the e2e test's way in) ----------------------------------
class Client:
    """Airflow's public REST API (/api/v2) with a JWT from /auth/token."""

    def __init__(self, settings: Settings):
        self.base = url(settings)
        self.session = requests.Session()
        try:
            response = self.session.post(f"{self.base}/auth/token", timeout=30, json={
                "username": settings.airflow_admin_user, "password": settings.airflow_admin_password})
        except requests.RequestException as exc:
            raise StackError(f"Airflow is not reachable at {self.base} ({type(exc).__name__}); run `make up`") from None
        if not response.ok:
            raise StackError(f"Airflow login as {settings.airflow_admin_user} failed ({response.status_code}); "
                             f"check AIRFLOW_ADMIN_PASSWORD in .env and restart airflow-api-server")
        self.session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def request(self, method: str, path: str, **kwargs) -> dict:
        response = self.session.request(method, f"{self.base}/api/v2{path}", timeout=30, **kwargs)
        if not response.ok:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise StackError(f"Airflow API {method} {path} failed ({response.status_code}): {str(detail)[:300]}")
        return response.json() if response.content else {}

    def wait_for_dag(self, dag_id: str, timeout: float = 300) -> dict:
        """The DAG once the dag-processor has parsed it (right after `make up` it may not have yet)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                dag = self.request("GET", f"/dags/{dag_id}")
            except StackError:
                dag = None
            if dag and dag.get("has_import_errors"):
                errors = [e for e in self.request("GET", "/importErrors").get("import_errors", [])
                          if e["filename"] in (dag.get("relative_fileloc"), dag.get("fileloc"))]
                last = errors[0]["stack_trace"].strip().splitlines()[-1] if errors else "see the Airflow UI"
                raise StackError(f"DAG {dag_id} does not load ({dag.get('relative_fileloc')}): {last}")
            if dag:
                return dag
            if time.monotonic() > deadline:
                raise StackError(f"DAG {dag_id} is not known to Airflow after {timeout:.0f}s; "
                                 f"see {self.base}/dags and `make logs s=airflow-dag-processor`")
            time.sleep(3)

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        self.wait_for_dag(dag_id)
        self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        run = self.request("POST", f"/dags/{dag_id}/dagRuns", json={
            "logical_date": datetime.now(UTC).isoformat(), "conf": conf or {}})
        return run["dag_run_id"]

    def run(self, dag_id: str, run_id: str) -> dict:
        return self.request("GET", f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.request("GET", f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances",
                            params={"limit": 1000})["task_instances"]

    def wait(self, dag_id: str, run_id: str, timeout: float, progress=print) -> dict:
        """Poll until the run ends; prints each task state change; returns the final run."""
        deadline = time.monotonic() + timeout
        seen: dict[str, str] = {}
        while True:
            for ti in self.task_instances(dag_id, run_id):
                key = ti["task_id"] + (f"[{ti['map_index']}]" if ti.get("map_index", -1) >= 0 else "")
                if ti["state"] and seen.get(key) != ti["state"]:
                    seen[key] = ti["state"]
                    took = f" ({ti['duration']:.1f}s)" if ti.get("duration") and ti["state"] == "success" else ""
                    progress(f"  {key}: {ti['state']}{took}")
            run = self.run(dag_id, run_id)
            if run["state"] in ("success", "failed"):
                return run
            if time.monotonic() > deadline:
                raise StackError(f"DAG run {dag_id} {run_id} still {run['state']} after {timeout:.0f}s; "
                                 f"see {self.base}/dags/{dag_id}")
            time.sleep(5)

    @contextmanager
    def paused(self, dag_id: str, timeout: float = 600):
        """Pause `dag_id` while no run of it is active; restore its previous state after.

        A run must not be in flight when the pause lands: Airflow lets a paused DAG's running tasks
        finish but leaves their downstream tasks scheduled, so that run would stay `running` until the
        unpause. So: wait until no run is active, pause, and if a run started in between, unpause and
        wait again."""
        before = self.wait_for_dag(dag_id)["is_paused"]

        def active() -> list:
            return self.request("GET", f"/dags/{dag_id}/dagRuns", params={"state": ["running", "queued"]})["dag_runs"]
        deadline = time.monotonic() + timeout
        while True:
            while runs := active():
                if time.monotonic() > deadline:
                    raise StackError(f"a {dag_id} run did not finish within {timeout:.0f}s: {runs[0]['dag_run_id']}")
                time.sleep(2)
            self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": True})
            if not active():
                break
            self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
            if time.monotonic() > deadline:
                raise StackError(f"{dag_id} kept starting runs while being paused for {timeout:.0f}s")
        try:
            yield
        finally:
            self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": before})


def main(argv: list[str]) -> int:
    from platform_common import config
    parser = argparse.ArgumentParser(prog="python -m stack.airflow", description="Trigger Airflow DAGs (REST API).")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("trigger", help="trigger a DAG run (and wait for it with --wait)")
    p.add_argument("dag_id")
    p.add_argument("--wait", action="store_true", help="print progress until the run ends; non-zero unless it succeeded")
    p.add_argument("--timeout", type=float, default=3600, help="seconds to wait (default 3600)")
    sub.add_parser("cli", help="run Airflow's own command line with the stack's configuration, e.g. "
                               "`cli tasks clear <dag> -t <task> --downstream --yes`")
    if argv[:1] == ["cli"]:  # everything after `cli` belongs to Airflow's parser
        try:
            env = {**os.environ, **environment(config.load())}
        except StackError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        os.execve(str(AIRFLOW), [str(AIRFLOW), *argv[1:]], env)
    args = parser.parse_args(argv)
    try:
        settings = config.load()
        client = Client(settings)
        run_id = client.trigger(args.dag_id)
        print(f"triggered {args.dag_id}: {run_id} ({client.base}/dags/{args.dag_id})", flush=True)
        if not args.wait:
            return 0
        started = time.monotonic()
        run = client.wait(args.dag_id, run_id, args.timeout, progress=lambda line: print(line, flush=True))
        if run["state"] != "success":
            failed = [ti["task_id"] for ti in client.task_instances(args.dag_id, run_id)
                      if ti["state"] in ("failed", "upstream_failed")]
            print(f"error: {args.dag_id} run {run_id} {run['state']} (failed: {', '.join(failed) or '?'}); "
                  f"logs: {client.base}/dags/{args.dag_id}/runs/{run_id}", file=sys.stderr)
            return 1
        print(f"{args.dag_id} succeeded in {time.monotonic() - started:.0f}s")
        return 0
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
