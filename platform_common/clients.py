"""Clients of the platform's services, configured from the settings: one way to connect to each."""
from __future__ import annotations

from platform_common.config import Settings


def clickhouse(settings: Settings, user_var: str = "CLICKHOUSE_USER", password_var: str = "CLICKHOUSE_PASSWORD",
               **kwargs):
    """A clickhouse-connect client as `user_var` (default: the platform's admin user; CLICKHOUSE_BI_USER for
    read-only). Imported here, not at the top: only the runtimes that talk to ClickHouse install it."""
    import clickhouse_connect
    return clickhouse_connect.get_client(host=settings["CLICKHOUSE_HOST"], port=settings.clickhouse_port,
                                         username=settings[user_var], password=settings[password_var], **kwargs)
