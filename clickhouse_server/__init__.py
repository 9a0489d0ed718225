"""A ClickHouse-compatible HTTP server backed by chDB.

No clickhouse-server can be installed from the registries this project uses, so the local stack
runs this one process: it owns the chDB data directory (only one process may open it) and speaks
the ClickHouse HTTP interface on CLICKHOUSE_PORT, so clickhouse-connect, dbt-clickhouse,
Superset and curl talk to it as to clickhouse-server. See docs/clickhouse-server.md.
"""
