"""The real-time churn scoring service (stack service `churn-api`): REST on CHURN_API_HOST:CHURN_API_PORT.

    POST /v1/churn/score  {"customer_id": "c000123"}   Authorization: Bearer <CHURN_API_TOKEN>
      200 {"customer_id", "p_churn", "risk_band", "reasons", "revenue_at_risk", "next_best_action",
           "model_version", "features_as_of", "new_sessions", "new_orders", "features", ...}
      401 no or a wrong token · 404 unknown customer · 422 invalid body · 503 no @champion yet
    GET /health   (no token) {"status": "ok", "model_version": ..., "customers": ...}

Every error is one line of JSON: {"error": "..."}. What a score means: spark_ml/churn/realtime.py.
The champion and the pipeline's scoring rows are loaded at start and reloaded in the background when
either changes (checked every CHURN_API_REFRESH_SECONDS); requests are served from the loaded copy.
One PostgreSQL connection per worker thread reads the customer's activity since the batch.
"""
from __future__ import annotations

import hmac
import logging
import os
import threading
from contextlib import asynccontextmanager

import psycopg2
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from platform_common import clients, config
from platform_common.config import Settings
from spark_ml.churn import realtime, registry, training_set

log = logging.getLogger("churn-api")


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer_id: str = Field(min_length=1, max_length=128)


class State:
    """The loaded snapshot (swapped whole) and a PostgreSQL connection per thread."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.model_name = os.environ.get("CHURN_API_MODEL", registry.MODEL_NAME)
        self.source = os.environ.get("CHURN_API_SOURCE", training_set.DEFAULT_SOURCE)
        self.refresh_seconds = settings.churn_api_refresh_seconds
        self.snapshot: realtime.Snapshot | None = None
        self.local = threading.local()
        self.stop = threading.Event()
        self.error: str | None = None

    def pg(self):
        conn = getattr(self.local, "conn", None)
        if conn is None or conn.closed:
            s = self.settings
            conn = psycopg2.connect(s.postgres_dsn(s.postgres_churn_api_user, s.postgres_churn_api_password))
            conn.autocommit = True
            self.local.conn = conn
        return conn

    def refresh(self) -> None:
        """Load when the champion or the scoring rows changed; keep serving the old copy if loading fails."""
        s = self.settings
        ch = clients.clickhouse(s, s.clickhouse_bi_user, s.clickhouse_bi_password)
        try:
            current = self.snapshot
            if current is not None:
                champion = registry.champion(registry.connect(self.settings, reader=True), self.model_name)
                version = str(champion[0].version) if champion else None
                if (version, *realtime.source_key(ch, self.source)) == current.key:
                    return
            loaded = realtime.load(self.settings, ch, self.source, self.model_name)
            if loaded is not None:
                self.snapshot = loaded
                log.info("loaded %s v%s: %d customers as of %s", loaded.model_name, loaded.version,
                         len(loaded.rows), loaded.cutoff)
            self.error = None
        except Exception as exc:  # noqa: BLE001 -- a failed reload keeps the last good copy; /health says why
            self.error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
            log.warning("reload failed: %s", self.error)
        finally:
            ch.close()

    def refresher(self) -> None:
        while not self.stop.wait(self.refresh_seconds):
            self.refresh()


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": " ".join(str(message).split())})


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or config.load()
    state = State(settings)
    token = settings.churn_api_token.encode()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state.refresh()
        thread = threading.Thread(target=state.refresher, name="churn-api-refresh", daemon=True)
        thread.start()
        yield
        state.stop.set()

    app = FastAPI(title="churn-api", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.churn = state

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        return _error(422, f"invalid request body: {where}: {first.get('msg')}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, exc.detail)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception):  # Starlette re-raises it after: uvicorn logs the traceback
        return _error(500, f"internal error scoring the request ({type(exc).__name__}); the traceback is in the "
                           "churn-api log")

    @app.middleware("http")
    async def authenticate(request: Request, call_next):
        if request.url.path != "/health":
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), b"Bearer " + token):
                return _error(401, "missing or wrong token: send Authorization: Bearer <CHURN_API_TOKEN>")
        return await call_next(request)

    @app.get("/health")
    def health():
        snap = state.snapshot
        return {"status": "ok", "model": state.model_name, "model_version": snap.version if snap else None,
                "customers": len(snap.rows) if snap else 0, "batch_cutoff": snap.cutoff.isoformat() if snap else None,
                "last_reload_error": state.error}

    @app.post("/v1/churn/score")
    def score_customer(body: ScoreRequest):
        snap = state.snapshot
        if snap is None:
            return _error(503, f"no @{registry.ALIAS} of {state.model_name} yet: the pipeline's score_churn "
                               "trains the first one")
        if body.customer_id not in snap.rows.index:
            return _error(404, f"unknown customer_id {body.customer_id!r} (not a live customer in the "
                               f"scoring rows of {snap.cutoff})")
        activity = realtime.read_activity(state.pg(), body.customer_id, snap.t_web, snap.t_order)
        return snap.score(body.customer_id, activity)

    return app
