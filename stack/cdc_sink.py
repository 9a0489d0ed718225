"""The CDC sink (debezium/cdc_sink): Debezium topics -> ClickHouse ReplacingMergeTree mirror (cdc.*).

Healthy = the process answers GET /health on CDC_SINK_PORT with 200, which it does only while its
consume loop is alive (it polled Kafka within the last 30 s); `make status` shows its progress.
"""
from __future__ import annotations

import sys

from platform_common.config import Settings
from platform_common.net import get_json
from stack.service import Service


def service(settings: Settings) -> Service:
    port = settings.cdc_sink_port
    url = f"http://127.0.0.1:{port}/health"

    def health() -> dict | None:
        return get_json(url, timeout=2)

    def details() -> str:
        stats = health()
        if stats is None:
            return ""
        lag = "?" if stats.get("lag") is None else stats["lag"]
        return (f"rows {stats['rows_written']}, lag {lag}, dead letters {stats['dead_letters']}, "
                f"batches {stats['batches']}")

    return Service(
        name="cdc-sink",
        port=port,
        port_setting="CDC_SINK_PORT",
        url=url,
        command=[sys.executable, "-m", "debezium.cdc_sink"],
        healthy=lambda: health() is not None,
        depends_on=("kafka", "connect", "clickhouse"),
        details=details,
        stop_wait_seconds=30,
    )
