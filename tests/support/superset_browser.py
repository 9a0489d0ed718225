"""Headless Chromium (Debian's package, driven by Playwright: no browser download) on Superset's
dashboards: log in as the admin, open a dashboard, wait until every chart has drawn. Used by the
browser test and by benchmarks/superset.py."""
from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

from platform_common.config import Settings
from stack import superset

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking"]
HOLDER = '[data-test="dashboard-component-chart-holder"]'
ERRORS = '.ant-alert-error, [data-test="error-tooltip"], [data-test="empty-state"], .chart-error'
# every chart holder is there, nothing is loading, and each holder has drawn: a canvas (ECharts),
# an svg, a table or a big number
_DRAWN = """([selector, expected]) => {
  const holders = document.querySelectorAll(selector);
  if (holders.length !== expected) return false;
  if (document.querySelector('[data-test="loading-indicator"], img.loading')) return false;
  return [...holders].every(h => h.querySelector('canvas, svg, table, .header-line'));
}"""


@contextmanager
def logged_in_page(settings: Settings):
    from playwright.sync_api import sync_playwright
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} not found; run `make setup` (installs Debian's chromium)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1100})
            page.goto(f"{superset.url(settings)}/login/")
            page.fill("#username", settings.superset_admin_user)
            page.fill("#password", settings.superset_admin_password)
            page.click("button[type=submit]")
            page.wait_for_url("**/superset/welcome/**", timeout=60_000)
            yield page
        finally:
            browser.close()


def open_dashboard(page, settings: Settings, slug: str, charts: int, timeout_s: float = 120) -> tuple[float, list]:
    """Open a dashboard and wait until its `charts` charts have drawn: (seconds, chart data responses)."""
    responses: list = []

    def listener(response) -> None:
        if "/api/v1/chart/data" in response.url:
            responses.append(response)

    page.on("response", listener)
    try:
        started = time.monotonic()
        page.goto(f"{superset.url(settings)}/superset/dashboard/{slug}/")
        page.wait_for_function(_DRAWN, arg=[HOLDER, charts], timeout=timeout_s * 1000)
        return time.monotonic() - started, responses
    finally:
        page.remove_listener("response", listener)
