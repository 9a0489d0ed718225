"""Clients of the platform's services, configured from the settings: one way to connect to each."""
from __future__ import annotations

from platform_common.config import Settings


def clickhouse(settings: Settings, user: str | None = None, password: str | None = None, **kwargs):
    """A clickhouse-connect client as `user` (default: the platform's admin user CLICKHOUSE_USER; pass
    settings.clickhouse_bi_user and its password for read-only). Imported here, not at the top: only the
    runtimes that talk to ClickHouse install it."""
    import clickhouse_connect
    if user is None:
        user, password = settings.clickhouse_user, settings.clickhouse_password
    return clickhouse_connect.get_client(host=settings.clickhouse_host, port=settings.clickhouse_port,
                                         username=user, password=password, **kwargs)
