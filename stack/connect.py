"""Kafka Connect in distributed mode (one worker) with the Debezium PostgreSQL plugin."""
from __future__ import annotations

import requests

from stack import jvm
from stack.config import Settings
from stack.service import Service

PLUGIN_DIR = jvm.JVM_DIR / "connect-plugins"
DEBEZIUM_POSTGRES = "io.debezium.connector.postgresql.PostgresConnector"


def service(settings: Settings) -> Service:
    properties = settings.data_dir / "connect" / "connect-distributed.properties"
    url = settings["CONNECT_URL"].rstrip("/")

    def prepare() -> None:
        jvm.render("connect-distributed.properties", properties, bootstrap=settings["KAFKA_BOOTSTRAP_SERVERS"],
                   host=settings.connect_host, port=settings.connect_port, plugin_path=PLUGIN_DIR)

    def healthy() -> bool:
        # the REST API answers before plugins are scanned; healthy = Debezium is loadable
        try:
            plugins = requests.get(f"{url}/connector-plugins", timeout=3)
            return plugins.ok and any(p["class"] == DEBEZIUM_POSTGRES for p in plugins.json())
        except (requests.RequestException, ValueError):
            return False

    return Service(
        name="connect",
        port=settings.connect_port,
        port_setting="CONNECT_URL",
        url=url,
        command=jvm.command("org.apache.kafka.connect.cli.ConnectDistributed", "kafka", "768m", str(properties)),
        healthy=healthy,
        depends_on=("kafka", "postgres"),
        prepare=prepare,
        stop_wait_seconds=60,
    )
