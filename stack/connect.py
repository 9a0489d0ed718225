"""Kafka Connect in distributed mode (one worker) with the Debezium PostgreSQL plugin.

Once it is healthy, `python -m debezium` registers the platform's connectors (debezium/connectors.py):
the connectors are the CDC engine's code, this module only runs and checks the worker."""
from __future__ import annotations

import requests

from platform_common.config import Settings
from stack import jvm
from stack.service import Service, engine_command

PLUGIN_DIR = jvm.JVM_DIR / "connect-plugins"
DEBEZIUM_POSTGRES = "io.debezium.connector.postgresql.PostgresConnector"


def service(settings: Settings) -> Service:
    properties = settings.data_dir / "connect" / "connect-distributed.properties"
    url = settings.connect_url.rstrip("/")

    def prepare() -> None:
        jvm.render("connect-distributed.properties", properties, bootstrap=settings.kafka_bootstrap_servers,
                   host=settings.connect_host, port=settings.connect_port, plugin_path=PLUGIN_DIR)

    def healthy() -> bool:
        # the REST API answers before plugins are scanned; healthy = Debezium is loadable
        try:
            plugins = requests.get(f"{url}/connector-plugins", timeout=3)
            return plugins.ok and any(p["class"] == DEBEZIUM_POSTGRES for p in plugins.json())
        except (requests.RequestException, ValueError):
            return False

    def provision() -> None:
        # the Debezium connectors (debezium/connectors/*.json): PUT their configs, wait for RUNNING
        engine_command("debezium")

    def details() -> str:
        # every registered connector with its state and its tasks' states, from Connect's REST API
        try:
            found = requests.get(f"{url}/connectors", params={"expand": "status"}, timeout=5).json()
        except (requests.RequestException, ValueError) as exc:
            return f"connector status unavailable: {type(exc).__name__}"
        return "; ".join(f"{name} {s['status']['connector']['state']} "
                         f"[{','.join(t['state'] for t in s['status']['tasks']) or 'no tasks'}]"
                         for name, s in sorted(found.items())) or "no connectors registered"

    return Service(
        name="connect",
        port=settings.connect_port,
        port_setting="CONNECT_URL",
        url=url,
        command=jvm.command("org.apache.kafka.connect.cli.ConnectDistributed", "kafka", "768m", str(properties)),
        healthy=healthy,
        depends_on=("kafka", "postgres"),
        prepare=prepare,
        provision=provision,
        details=details,
        # what the connectors' ${env:POSTGRES_CDC_PASSWORD} resolves to (connect-distributed.properties)
        environment={"POSTGRES_CDC_PASSWORD": settings.postgres_cdc_password},
        stop_wait_seconds=60,
    )
