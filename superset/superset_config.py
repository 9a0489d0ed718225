"""Superset's configuration (SUPERSET_CONFIG_PATH points here), for the local stack and compose alike.

Everything deployment-specific comes from the environment (the local stack passes .env's values,
compose its `environment:`), so this file holds no secret and no address.
"""
import os
from urllib.parse import quote

_env = os.environ

SECRET_KEY = _env["SUPERSET_SECRET_KEY"]
SQLALCHEMY_DATABASE_URI = (
    f"postgresql+psycopg2://{quote(_env['POSTGRES_SUPERSET_USER'])}:{quote(_env['POSTGRES_SUPERSET_PASSWORD'], safe='')}"
    f"@{_env['POSTGRES_HOST']}:{_env['POSTGRES_PORT']}/{_env['POSTGRES_SUPERSET_DB']}")

# One cache shared by every gunicorn worker (a per-process SimpleCache would make a forced refresh
# in one worker invisible to the others): files under the data folder, no Redis to run.
_CACHE_DIR = _env["SUPERSET_CACHE_DIR"]


def _cache(prefix: str, timeout: int) -> dict:
    return {"CACHE_TYPE": "FileSystemCache", "CACHE_DIR": os.path.join(_CACHE_DIR, prefix),
            "CACHE_DEFAULT_TIMEOUT": timeout, "CACHE_KEY_PREFIX": f"superset_{prefix}_", "CACHE_THRESHOLD": 5000}


CACHE_CONFIG = _cache("metadata", 300)
# chart results: kept a day; `python -m stack.superset refresh` (the pipeline's last task) forces new ones,
# and the real-time datasets set their own short cache_timeout
DATA_CACHE_CONFIG = _cache("data", 86400)
FILTER_STATE_CACHE_CONFIG = _cache("filter_state", 86400)
EXPLORE_FORM_DATA_CACHE_CONFIG = _cache("explore", 86400)

FEATURE_FLAGS = {
    # render every chart of a dashboard, not only those scrolled into view (screenshots, browser test)
    "DASHBOARD_VIRTUALIZATION": False,
    "DASHBOARD_RBAC": True,
}

# the local stack serves plain HTTP on 127.0.0.1; compose puts nothing in front either
TALISMAN_ENABLED = False
CONTENT_SECURITY_POLICY_WARNING = False
SESSION_COOKIE_SECURE = False
WTF_CSRF_TIME_LIMIT = None
# real-time dashboards refresh every minute; the ClickHouse marts change a few times a day
SUPERSET_WEBSERVER_TIMEOUT = 120
SQLLAB_TIMEOUT = 120
ROW_LIMIT = 50000
# no telemetry calls from a local platform
SCARF_ANALYTICS = False
