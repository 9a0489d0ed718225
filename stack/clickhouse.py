"""ClickHouse for the local stack: the chDB-backed HTTP server (clickhouse_server) on 8123.

It owns the chDB data directory (only one process may open it) and serves the ClickHouse
HTTP interface, so every client talks to it as it would to clickhouse-server.
"""
from __future__ import annotations

import sys

import requests

from platform_common.config import Settings
from stack import migrations
from stack.service import Service


def service(settings: Settings) -> Service:
    url = f"http://{settings.clickhouse_host}:{settings.clickhouse_port}"

    def healthy() -> bool:
        try:
            return requests.get(f"{url}/ping", timeout=2).text == "Ok.\n"
        except requests.RequestException:
            return False

    def provision() -> None:
        # goose speaks ClickHouse's HTTP interface through clickhouse-go (the http:// DSN)
        migrations.apply("clickhouse", migrations.CLICKHOUSE_DIR,
                         f"http://{settings.clickhouse_user}:{settings.clickhouse_password}"
                         f"@{settings.clickhouse_host}:{settings.clickhouse_port}/default")

    return Service(
        name="clickhouse",
        port=settings.clickhouse_port,
        port_setting="CLICKHOUSE_PORT",
        url=url,
        command=[sys.executable, "-m", "clickhouse_server"],
        healthy=healthy,
        provision=provision,
        environment={
            "CLICKHOUSE_HOST": settings.clickhouse_host,
            "CLICKHOUSE_PORT": str(settings.clickhouse_port),
            "CLICKHOUSE_DATA_DIR": str(settings.data_dir / "clickhouse"),
            "CLICKHOUSE_USER": settings.clickhouse_user,
            "CLICKHOUSE_PASSWORD": settings.clickhouse_password,
            "CLICKHOUSE_BI_USER": settings.clickhouse_bi_user,
            "CLICKHOUSE_BI_PASSWORD": settings.clickhouse_bi_password,
        },
        stop_wait_seconds=60,
    )
