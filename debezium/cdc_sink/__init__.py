"""The CDC sink: Debezium change topics -> ClickHouse ReplacingMergeTree mirror (`python -m debezium.cdc_sink`)."""
