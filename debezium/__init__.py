"""CDC: Debezium connector configs (connectors/*.json) and the CDC sink into ClickHouse (cdc_sink)."""
