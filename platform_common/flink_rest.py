"""The Flink cluster as its REST API shows it (FLINK_REST_URL): the overview, the jobs, the streaming job."""
from __future__ import annotations

import requests

from platform_common.config import Settings
from platform_common.contracts import FLINK_JOB_NAME
from platform_common.net import get_json

ACTIVE_STATES = {"RUNNING", "CREATED", "INITIALIZING", "RESTARTING", "RECONCILING"}


def rest_url(settings: Settings) -> str:
    return settings.flink_rest_url.rstrip("/")


def overview(settings: Settings) -> dict | None:
    return get_json(f"{rest_url(settings)}/overview", timeout=3)


def jobs(settings: Settings) -> list[dict]:
    response = requests.get(f"{rest_url(settings)}/jobs/overview", timeout=5)
    response.raise_for_status()
    return response.json()["jobs"]


def running_job(settings: Settings) -> dict | None:
    """The streaming job while it is active (running, starting or restarting), else None."""
    return next((j for j in jobs(settings) if j["name"] == FLINK_JOB_NAME and j["state"] in ACTIVE_STATES), None)
