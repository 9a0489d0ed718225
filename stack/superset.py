"""Superset: the BI web app (gunicorn on 127.0.0.1:SUPERSET_PORT) and the dashboards as code.

Superset runs from its own virtualenv (.tools/venvs/superset, requirements/superset.lock: it pins
SQLAlchemy 1.4 and its own Flask stack), configured by superset/superset_config.py through
environment variables. Its working directory is DATA_DIR/superset, never the repo root, so the repo's
`superset/` folder (the dashboards bundle) cannot shadow the `superset` Python package.

Before the first start (its database and role come from sql/postgres/roles.sql, as every component's):
`superset db upgrade`, the admin user from .env, `superset init`. Once healthy, provisioning imports
the bundle in superset/bundle through the REST API (/api/v1/assets/import/, which overwrites by
UUID, so re-applying is idempotent), filling in the database URIs and passwords from .env.

This module only talks HTTP (requests), so the main environment runs `python -m stack.superset
apply|refresh`; `refresh` is the Airflow pipeline's last task.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import string
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests
import yaml

from platform_common.config import REPO, TOOLS, Settings
from platform_common.errors import StackError
from stack.service import Service

VENV = TOOLS / "venvs" / "superset"
CONFIG_MODULE = REPO / "superset" / "superset_config.py"
BUNDLE = REPO / "superset" / "bundle"
LOCK = REPO / "requirements" / "superset.lock"
MASKED = "XXXXXXXXXX"  # how Superset's exports write a password; the import fills it from `passwords`


def url(settings: Settings) -> str:
    return f"http://{settings.superset_host}:{settings.superset_port}"


def workdir(settings: Settings) -> Path:
    return settings.data_dir / "superset"


def environment(settings: Settings) -> dict[str, str]:
    """What superset_config.py reads (the same names compose sets)."""
    return {
        "SUPERSET_CONFIG_PATH": str(CONFIG_MODULE),
        "SUPERSET_SECRET_KEY": settings.superset_secret_key,
        "SUPERSET_CACHE_DIR": str((workdir(settings) / "cache").resolve()),
        "POSTGRES_HOST": settings.postgres_host,
        "POSTGRES_PORT": str(settings.postgres_port),
        "POSTGRES_SUPERSET_DB": settings.postgres_superset_db,
        "POSTGRES_SUPERSET_USER": settings.postgres_superset_user,
        "POSTGRES_SUPERSET_PASSWORD": settings.postgres_superset_password,
        "SUPERSET_LOAD_EXAMPLES": "no",
    }


def _cli(settings: Settings, *args: str, what: str) -> str:
    exe = VENV / "bin" / "superset"
    if not exe.exists():
        raise StackError(f"Superset not found in {VENV}; run `make setup` (builds it from requirements/superset.lock)")
    log = settings.data_dir / "logs" / "superset-init.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=workdir(settings),
                            env={**os.environ, **environment(settings)}, timeout=600)
    with log.open("a") as fh:
        fh.write(f"$ superset {args[0]} {args[1] if len(args) > 1 and not args[1].startswith('-') else ''}\n"
                 f"{result.stdout}{result.stderr}\n")
    if result.returncode != 0:
        raise StackError(f"`superset {what}` failed (exit {result.returncode}); see {log}")
    return result.stdout + result.stderr


def prepare(settings: Settings) -> None:
    """Idempotent: schema migrations, admin user, roles and permissions."""
    (workdir(settings) / "cache").mkdir(parents=True, exist_ok=True)
    # each CLI call loads the whole app (~10 s): skip them when nothing they depend on changed
    user, password = settings.superset_admin_user, settings.superset_admin_password
    marker = workdir(settings) / "initialized"
    inputs = hashlib.sha256("\0".join([LOCK.read_text(), CONFIG_MODULE.read_text(), user, password,
                                        settings.postgres_superset_db]).encode()).hexdigest()
    if marker.exists() and marker.read_text() == inputs:
        return
    _cli(settings, "db", "upgrade", what="db upgrade")
    out = _cli(settings, "fab", "create-admin", "--username", user, "--firstname", "Platform", "--lastname", "Admin",
               "--email", f"{user}@localhost", f"--password={password}", what="fab create-admin")
    if "already exists" in out:  # keep the password in line with .env
        _cli(settings, "fab", "reset-password", "--username", user, f"--password={password}", what="fab reset-password")
    _cli(settings, "init", what="init")
    marker.write_text(inputs)


def healthy(settings: Settings) -> bool:
    try:
        return requests.get(f"{url(settings)}/health", timeout=3).text == "OK"
    except requests.RequestException:
        return False


class Client:
    """Superset's REST API as the admin: JWT for reads, plus the session's CSRF token for writes."""

    def __init__(self, settings: Settings, timeout: float = 120):
        self.base = url(settings)
        self.timeout = timeout
        self.http = requests.Session()
        try:
            response = self.http.post(f"{self.base}/api/v1/security/login", timeout=timeout, json={
                "username": settings.superset_admin_user, "password": settings.superset_admin_password,
                "provider": "db", "refresh": False})
        except requests.RequestException as exc:
            raise StackError(f"Superset is not reachable at {self.base} ({type(exc).__name__}); "
                             f"start it with `make up s=superset`") from None
        if response.status_code != 200:
            raise StackError(f"Superset login as {settings.superset_admin_user} failed (HTTP {response.status_code}); "
                             f"check SUPERSET_ADMIN_USER/SUPERSET_ADMIN_PASSWORD in .env")
        self.http.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        self.http.headers["Referer"] = self.base

    def _check(self, response: requests.Response, what: str) -> dict:
        if not response.ok:
            try:
                message = response.json().get("message") or response.json().get("errors") or response.text
            except ValueError:
                message = response.text
            raise StackError(f"Superset {what} failed (HTTP {response.status_code}): {' '.join(str(message).split())[:300]}")
        return response.json()

    def get(self, path: str, **params) -> dict:
        return self._check(self.http.get(f"{self.base}{path}", params=params, timeout=self.timeout), f"GET {path}")

    def post(self, path: str, **kwargs) -> dict:
        if "X-CSRFToken" not in self.http.headers:
            self.http.headers["X-CSRFToken"] = self.get("/api/v1/security/csrf_token/")["result"]
        return self._check(self.http.post(f"{self.base}{path}", timeout=self.timeout, **kwargs), f"POST {path}")

    def list(self, resource: str) -> list[dict]:
        """Every object of a resource (one page of up to 1000 is plenty for this platform)."""
        return self.get(f"/api/v1/{resource}/", q="(page_size:1000)")["result"]


# -- the bundle ------------------------------------------------------------------------------------
def _setting(settings: Settings, name: str, path: Path) -> str:
    """The value of the variable a bundle file names (${CLICKHOUSE_HOST}): its field of Settings."""
    field = name.lower()
    value = getattr(settings, field) if field in Settings.model_fields else None
    if value is None:
        raise StackError(f"{path.relative_to(REPO)}: sqlalchemy_uri names ${{{name}}}, which is no variable of "
                         f".env.example")
    return str(value)


def bundle_files(settings: Settings) -> tuple[dict[str, str], dict[str, str]]:
    """The bundle's files (name -> YAML) with database URIs filled in from .env, and their passwords.

    A database's URI in git names its settings as ${VAR} with the password masked, e.g.
    clickhousedb://${CLICKHOUSE_BI_USER}:XXXXXXXXXX@${CLICKHOUSE_HOST}:${CLICKHOUSE_PORT}/analytics;
    its password is the variable named like the user one with _PASSWORD (CLICKHOUSE_BI_PASSWORD).
    """
    if not (BUNDLE / "metadata.yaml").exists():
        raise StackError(f"{BUNDLE.relative_to(REPO)}/metadata.yaml not found; the dashboards bundle is incomplete")
    files: dict[str, str] = {}
    passwords: dict[str, str] = {}
    for path in sorted(BUNDLE.rglob("*.yaml")):
        name = path.relative_to(BUNDLE).as_posix()
        text = path.read_text()
        if name.startswith("databases/"):
            config = yaml.safe_load(text)
            template = string.Template(config["sqlalchemy_uri"])
            names = [m.group("braced") for m in template.pattern.finditer(template.template) if m.group("braced")]
            users = [n for n in names if n.endswith("_USER")]
            if len(users) != 1 or MASKED not in template.template:
                raise StackError(f"{path.relative_to(REPO)}: sqlalchemy_uri must name one ${{..._USER}} "
                                 f"and mask its password as {MASKED}")
            config["sqlalchemy_uri"] = template.substitute({n: _setting(settings, n, path) for n in names})
            passwords[name] = _setting(settings, users[0].removesuffix("_USER") + "_PASSWORD", path)
            text = yaml.safe_dump(config, sort_keys=False)
        files[name] = text
    return files, passwords


def bundle_zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in files.items():
            zf.writestr(f"platform_bundle/{name}", text)
    return buffer.getvalue()


def bundle_uuids(kind: str) -> dict[str, str]:
    """uuid -> title of the bundle's objects of one kind (databases, datasets, charts, dashboards)."""
    title = {"databases": "database_name", "datasets": "table_name", "charts": "slice_name",
             "dashboards": "dashboard_title"}[kind]
    found = {}
    for path in sorted((BUNDLE / kind).rglob("*.yaml")):
        config = yaml.safe_load(path.read_text())
        found[config["uuid"]] = config[title]
    return found


def apply(settings: Settings, client: Client | None = None) -> dict[str, int]:
    """Import the bundle (overwriting by UUID) and check every object of it is there; counts per kind."""
    files, passwords = bundle_files(settings)
    client = client or Client(settings)
    client.post("/api/v1/assets/import/", files={"bundle": ("bundle.zip", bundle_zip(files), "application/zip")},
                data={"passwords": json.dumps(passwords)})
    counts = {}
    for kind, resource in (("databases", "database"), ("datasets", "dataset"), ("charts", "chart"),
                           ("dashboards", "dashboard")):
        wanted = bundle_uuids(kind)
        present = [o for o in client.list(resource) if o.get("uuid") in wanted] if resource != "database" else \
            [o for o in client.list(resource) if o["database_name"] in wanted.values()]
        if len(present) != len(wanted):
            raise StackError(f"after importing the bundle Superset has {len(present)} of its {len(wanted)} {kind}")
        counts[kind] = len(present)
    return counts


# -- refresh -----------------------------------------------------------------------------------------
REFRESH_CONCURRENCY = 4   # charts refreshed at once (refresh)


@dataclass
class Refreshed:
    dashboard: str
    chart: str
    rows: int
    seconds: float


def platform_dashboards(client: Client) -> list[dict]:
    wanted = bundle_uuids("dashboards")
    found = [d for d in client.list("dashboard") if d.get("uuid") in wanted]
    if len(found) != len(wanted):
        missing = set(wanted.values()) - {d["dashboard_title"] for d in found}
        raise StackError(f"dashboard(s) not in Superset: {', '.join(sorted(missing))}; "
                         f"apply the bundle with `python -m stack.superset apply`")
    return sorted(found, key=lambda d: d["dashboard_title"])


def chart_data(client: Client, chart_id: int, force: bool = False) -> list[dict]:
    """A chart's result rows through the chart data API (its saved query context), optionally forced."""
    params = {"force": "true"} if force else {}
    body = client.get(f"/api/v1/chart/{chart_id}/data/", **params)
    result = body["result"][0]
    if result.get("error"):
        raise StackError(f"chart {chart_id}: {result['error']}")
    return result["data"]


def refresh(settings: Settings, client: Client | None = None) -> list[Refreshed]:
    """Force-refresh every chart of the platform's dashboards: new query, new cache entry.

    REFRESH_CONCURRENCY charts at a time (the GETs share one session's connection pool; gunicorn serves
    them on its threads): one after another, the 32 charts took 7 s of the pipeline's critical path,
    mostly waiting on one short ClickHouse query after another."""
    client = client or Client(settings)
    charts = [(dashboard["dashboard_title"], chart)
              for dashboard in platform_dashboards(client)
              for chart in sorted(client.get(f"/api/v1/dashboard/{dashboard['id']}/charts")["result"],
                                  key=lambda c: c["slice_name"])]

    def one(item: tuple[str, dict]) -> Refreshed:
        title, chart = item
        started = time.monotonic()
        try:
            rows = chart_data(client, chart["id"], force=True)
        except StackError as exc:
            raise StackError(f"refreshing {title} / {chart['slice_name']}: {exc}") from None
        return Refreshed(title, chart["slice_name"], len(rows), time.monotonic() - started)

    with ThreadPoolExecutor(max_workers=REFRESH_CONCURRENCY, thread_name_prefix="refresh") as pool:
        return list(pool.map(one, charts))


def _provision(settings: Settings) -> None:
    apply(settings)  # raises when an object of the bundle is missing afterwards


def service(settings: Settings) -> Service:
    port = settings.superset_port
    return Service(
        name="superset",
        port=port,
        port_setting="SUPERSET_PORT",
        url=url(settings),
        command=[str(VENV / "bin" / "gunicorn"), "--chdir", str(workdir(settings).resolve()),
                 "--bind", f"{settings.superset_host}:{port}", "--workers", str(settings.superset_workers),
                 "--worker-class", "gthread", "--threads", "4", "--timeout", "120",
                 "--limit-request-line", "0", "--limit-request-field_size", "0",
                 "superset.app:create_app()"],
        healthy=lambda: healthy(settings),
        depends_on=("postgres", "clickhouse"),
        prepare=lambda: prepare(settings),
        provision=lambda: _provision(settings),
        environment=environment(settings),
        stop_wait_seconds=30,
    )


def main(argv: list[str]) -> int:
    """`python -m stack.superset apply|refresh`: re-apply the dashboards bundle, or force-refresh every chart."""
    from platform_common import config
    try:
        settings = config.load()
        if argv[:1] == ["apply"]:
            counts = apply(settings)
            print("applied superset/bundle: " + ", ".join(f"{n} {kind}" for kind, n in counts.items()))
            return 0
        if argv[:1] == ["refresh"]:
            done = refresh(settings)
            for r in done:
                print(f"refreshed {r.dashboard} / {r.chart}: {r.rows} rows in {r.seconds:.2f}s")
            print(f"refreshed {len(done)} charts on {len({r.dashboard for r in done})} dashboards")
            return 0
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("usage: python -m stack.superset apply|refresh", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
