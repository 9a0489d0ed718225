"""`python -m clickhouse_server`: open the chDB data directory and serve ClickHouse HTTP.

Configuration comes from the environment (see config.py); any problem stops the process with
one line on stderr. uvicorn handles SIGTERM/SIGINT: it stops accepting, lets running requests
finish (CLICKHOUSE_GRACEFUL_TIMEOUT seconds), then the app closes every chDB connection.
"""
from __future__ import annotations

import importlib.util
import logging
import signal
import sys


def main() -> int:
    from .config import ConfigError, load

    try:
        cfg = load()
    except ConfigError as exc:
        print(f"clickhouse_server: {exc}", file=sys.stderr)
        return 2
    import os

    logging.basicConfig(level=os.environ.get("CLICKHOUSE_LOG_LEVEL", "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import uvicorn

    from .app import App
    from .engine import DataDirLocked, Engine

    try:
        eng = Engine(cfg.data_dir, cfg.max_memory_percent)
    except DataDirLocked as exc:
        print(f"clickhouse_server: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # chDB could not open the directory
        print(f"clickhouse_server: cannot open chDB at {cfg.data_dir}: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    logging.getLogger("clickhouse_server").info(
        "chDB %s at %s; listening on http://%s:%d", eng.version, cfg.data_dir, cfg.host, cfg.port)
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    server = uvicorn.Server(uvicorn.Config(
        App(cfg, eng), host=cfg.host, port=cfg.port, loop=loop, http="httptools", lifespan="on",
        access_log=False, log_level="info", timeout_graceful_shutdown=cfg.graceful_timeout,
        timeout_keep_alive=30, server_header=False,
    ))
    # uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown; with these no-op handlers the
    # process then exits 0, so supervisors see a clean stop rather than death by signal.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    server.run()
    eng.close()  # no-op after a clean lifespan shutdown; releases the lock if startup failed
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
