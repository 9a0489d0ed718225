"""Superset in the local stack, through its REST API: the dashboards bundle re-applies idempotently,
`python -m stack.superset refresh` (the Airflow pipeline's last task) refreshes every chart, and a
chart's data through Superset equals the same query run directly on ClickHouse."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import psycopg
import pytest

from platform_common import clients
from platform_common.config import REPO
from stack import superset
from tests.conftest import ensure_up
from tests.support import superset_browser as browser
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration
# what superset/bundle declares: the dashboards and their charts
BUNDLE_COUNTS = {"databases": 2, "datasets": 11, "charts": 32, "dashboards": 7}


@pytest.fixture(scope="session")
def superset_up(settings):
    return ensure_up(settings, "superset")


@pytest.fixture(scope="session")
def recent_events(superset_up):
    """The real-time dashboards show the last 24 h: stream a short live burst through Kafka → Flink →
    PostgreSQL (the real path) and wait until its minutes are in the real-time aggregates."""
    # web events and, side by side, orders of their own: 200 customers' live sessions convert so rarely that
    # 15 s of them can hold no order at all, and the order charts then had data only when an earlier test
    # had streamed orders in the last 10 minutes
    bursts = [subprocess.Popen([sys.executable, "-m", "simulators", "events", "--mode", "live", "--customers", "200",
                                "--id-prefix", "SUP", "--streams", streams, "--rate", rate, "--duration", "15",
                                "--ledger", "none", "-q"], cwd=REPO)
              for streams, rate in (("web", "100"), ("purchases", "20"))]
    assert [b.wait(timeout=120) for b in bursts] == [0, 0]
    with psycopg.connect(superset_up.postgres_dsn(superset_up.postgres_user, superset_up.postgres_password)) as conn:
        def fresh():
            return conn.execute(
                "SELECT (SELECT count(*) FROM realtime.web_metrics_1m WHERE window_start > now() - interval '10 minutes'),"
                " (SELECT count(*) FROM realtime.order_metrics_1m WHERE window_start > now() - interval '10 minutes')"
            ).fetchone()
        assert wait_for(lambda: all(fresh()), True, timeout=180, interval=2), \
            f"no fresh real-time aggregates after a live burst (web, orders): {fresh()}"
    return superset_up


@pytest.fixture(scope="module")
def api(superset_up):
    return superset.Client(superset_up)


def _totals(api) -> dict[str, int]:
    return {kind: api.get(f"/api/v1/{resource}/", q="(page_size:1)")["count"]
            for kind, resource in (("databases", "database"), ("datasets", "dataset"), ("charts", "chart"),
                                   ("dashboards", "dashboard"))}


def _chart_id(api, name: str) -> int:
    found = [c["id"] for c in api.list("chart") if c["slice_name"] == name]
    assert len(found) == 1, f"expected one chart named {name!r}, found {len(found)}"
    return found[0]


def test_bundle_reapplies_idempotently(superset_up, api):
    before = _totals(api)
    assert superset.apply(superset_up, api) == BUNDLE_COUNTS
    assert superset.apply(superset_up, api) == BUNDLE_COUNTS
    assert _totals(api) == before
    # the bundle's objects are all there; nothing else was created by applying it
    for kind in ("datasets", "charts", "dashboards"):
        assert before[kind] >= BUNDLE_COUNTS[kind]


def test_no_password_in_the_bundle_and_uris_come_from_env(superset_up):
    files, passwords = superset.bundle_files(superset_up)
    in_git = "".join(p.read_text() for p in superset.BUNDLE.rglob("*.yaml"))
    for password in (superset_up.postgres_bi_password, superset_up.clickhouse_bi_password,
                     superset_up.postgres_password, superset_up.clickhouse_password):
        assert password not in in_git
    assert passwords == {"databases/Platform_ClickHouse_analytics.yaml": superset_up.clickhouse_bi_password,
                         "databases/Platform_PostgreSQL_real-time.yaml": superset_up.postgres_bi_password}
    assert (f"clickhousedb://{superset_up.clickhouse_bi_user}:XXXXXXXXXX@{superset_up.clickhouse_host}:"
            f"{superset_up.clickhouse_port}/analytics") in files["databases/Platform_ClickHouse_analytics.yaml"]


def test_databases_use_the_read_only_users(superset_up, api):
    uris = {d["database_name"]: api.get(f"/api/v1/database/{d['id']}/connection")["result"]["sqlalchemy_uri"]
            for d in api.list("database")}
    assert uris["Platform PostgreSQL (real-time)"].startswith(f"postgresql+psycopg2://{superset_up.postgres_bi_user}:")
    assert uris["Platform ClickHouse (analytics)"].startswith(f"clickhousedb://{superset_up.clickhouse_bi_user}:")


def test_refresh_command_refreshes_every_chart(superset_up):
    result = subprocess.run([sys.executable, "-m", "stack.superset", "refresh"], cwd=REPO, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == f"refreshed {BUNDLE_COUNTS['charts']} charts on {BUNDLE_COUNTS['dashboards']} dashboards"
    assert len([line for line in lines if line.startswith("refreshed ") and " rows in " in line]) == BUNDLE_COUNTS["charts"]
    assert any(line.startswith("refreshed Customer segments / Segment sizes: ") for line in lines)


def test_refresh_with_a_wrong_password_fails_with_one_line(superset_up):
    result = subprocess.run([sys.executable, "-m", "stack.superset", "refresh"], cwd=REPO, capture_output=True,
                            text=True, timeout=120, env={**superset_up.as_env(), "SUPERSET_ADMIN_PASSWORD": "wrong"})
    assert result.returncode == 1
    assert result.stderr == (f"error: Superset login as {superset_up.superset_admin_user} failed (HTTP 401); "
                             f"check SUPERSET_ADMIN_USER/SUPERSET_ADMIN_PASSWORD in .env\n")


def test_chart_data_equals_a_direct_clickhouse_query(superset_up, api):
    ch = clients.clickhouse(superset_up, superset_up.clickhouse_bi_user, superset_up.clickhouse_bi_password)
    rows = superset.chart_data(api, _chart_id(api, "Segment sizes"), force=True)
    direct = ch.query("SELECT segment_name, sum(size) FROM ml.segment_profiles_latest GROUP BY segment_name").result_rows
    assert {r["segment_name"]: r["customers"] for r in rows} == dict(direct)
    assert len(rows) == len(direct) > 0

    rows = superset.chart_data(api, _chart_id(api, "Country performance"), force=True)
    direct = ch.query("SELECT country, sum(customers), sum(revenue_90d) FROM analytics.fct_country_performance "
                      "GROUP BY country").result_rows
    assert {r["country"]: (r["customers"], r["revenue 90d"]) for r in rows} == \
        {country: (customers, revenue) for country, customers, revenue in direct}
    assert len(rows) == len(direct) > 0


def test_real_time_charts_cover_the_last_24_hours_up_to_now(superset_up, api):
    """Superset's "Last day" is yesterday, midnight to midnight: a real-time chart on it showed nothing
    of today. Every chart of the two real-time dashboards asks for the 24 hours up to now."""
    charts = [c for slug in ("realtime-web", "realtime-orders")
              for c in api.get(f"/api/v1/dashboard/{slug}/charts")["result"]]
    assert len(charts) == CHARTS_PER_DASHBOARD["realtime-web"] + CHARTS_PER_DASHBOARD["realtime-orders"]
    for chart in charts:
        result = api.get(f"/api/v1/chart/{chart['id']}/data/", force="true")["result"][0]
        now_ms = time.time() * 1000
        assert 0 <= now_ms - result["to_dttm"] < 120_000, (chart["slice_name"], result["to_dttm"])
        # "24 hours ago : now": Superset reads the clock (to the second) once for each end, so when a second
        # ticks between the two reads the span is 24 h + 1 s (it failed a CI run once); never more or less
        span = result["to_dttm"] - result["from_dttm"]
        assert span in (24 * 3600 * 1000, 24 * 3600 * 1000 + 1000), (chart["slice_name"], span)


# -- the browser test: Debian's chromium, headless, driven by Playwright (no browser download) --------
CHARTS_PER_DASHBOARD = {"realtime-web": 6, "realtime-orders": 5, "market-by-country": 5,
                        "customer-acquisition": 3, "funnel": 3, "customer-segments": 4, "churn-risk": 6}


def _rows(response) -> list[int]:
    """Row count of each query of a chart data response; an error fails the test with its message."""
    assert response.status == 200, f"{response.url}: HTTP {response.status}"
    results = response.json()["result"]
    assert not [r["error"] for r in results if r.get("error")], results
    return [r["rowcount"] for r in results]


def test_every_dashboard_renders_data_in_headless_chromium(superset_up, recent_events):
    artifacts = superset_up.data_dir / "test-artifacts" / "superset"
    artifacts.mkdir(parents=True, exist_ok=True)
    assert sum(CHARTS_PER_DASHBOARD.values()) == BUNDLE_COUNTS["charts"]
    timings = {}
    with browser.logged_in_page(superset_up) as page:
        for slug, expected in CHARTS_PER_DASHBOARD.items():
            seconds, responses = browser.open_dashboard(page, superset_up, slug, expected)
            timings[slug] = round(seconds, 2)
            page.wait_for_timeout(1000)  # ECharts animates its first draw
            # the page is checked before its full-page screenshot, which is taken either way: twice
            # (customer-acquisition, later customer-segments) the grid was empty in and right after the
            # screenshot, 1 s after every chart had drawn; the cause is not established
            try:
                assert page.locator(browser.HOLDER).count() == expected, slug
                errors = page.locator(f"{browser.HOLDER} :is({browser.ERRORS})")
                assert errors.count() == 0, f"{slug}: error panel: {errors.first.inner_text()[:200]}"
                assert "No results were returned" not in page.locator(".dashboard").inner_text(), slug
            finally:
                page.screenshot(path=str(artifacts / f"{slug}.png"), full_page=True)
            assert len(responses) == expected, f"{slug}: {len(responses)} chart data requests, expected {expected}"
            empty = [r.url for r in responses if 0 in _rows(r)]
            assert not empty, f"{slug}: chart(s) without data: {empty}"
    (artifacts / "render_seconds.json").write_text(json.dumps(timings, indent=2))
    print("dashboard render seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
