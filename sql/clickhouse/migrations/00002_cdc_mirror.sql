-- +goose Up
-- The CDC mirror of PostgreSQL, written by the CDC sink (debezium/cdc_sink) from the Debezium topics.
-- One table per source table, cdc.<schema>_<table>, with the source columns (types mapped from
-- Debezium's: numeric -> Decimal(p, s), timestamptz -> DateTime64(6, 'UTC'), date -> Date32,
-- uuid -> UUID, jsonb -> String, nullable -> Nullable) and the mirror's own columns:
--   _version      source LSN * 2^16 + (0 for snapshot rows, 1 for streamed changes)
--   _is_deleted   1 for a delete (the row carries the key)
--   _op           r (snapshot), c, u, d;  _source_ts_ms: source commit time;  _synced_at: arrival
-- Read it with FINAL: one row per key, the latest version, deleted keys gone.
-- IF NOT EXISTS: the sink creates a missing mirror table itself with the same definition.
-- +goose StatementBegin
CREATE TABLE IF NOT EXISTS cdc.crm_customers (
    `customer_id` String,
    `email` String,
    `signup_date` Date32,
    `country` String,
    `acquisition_channel` String,
    `subscription_tier` String,
    `updated_at` DateTime64(6, 'UTC'),
    `_version` UInt64,
    `_is_deleted` UInt8,
    `_op` LowCardinality(String),
    `_source_ts_ms` Int64,
    `_synced_at` DateTime64(6, 'UTC') DEFAULT now64(6)
) ENGINE = ReplacingMergeTree(_version, _is_deleted)
ORDER BY (`customer_id`);
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TABLE IF NOT EXISTS cdc.raw_web_events (
    `event_id` UUID,
    `customer_id` String,
    `session_id` String,
    `event_type` String,
    `page_url` Nullable(String),
    `product_id` Nullable(String),
    `search_query` Nullable(String),
    `device_type` String,
    `country` String,
    `utm_source` Nullable(String),
    `event_time` DateTime64(6, 'UTC'),
    `kafka_partition` Int32,
    `kafka_offset` Int64,
    `ingested_at` DateTime64(6, 'UTC'),
    `_version` UInt64,
    `_is_deleted` UInt8,
    `_op` LowCardinality(String),
    `_source_ts_ms` Int64,
    `_synced_at` DateTime64(6, 'UTC') DEFAULT now64(6)
) ENGINE = ReplacingMergeTree(_version, _is_deleted)
ORDER BY (`event_id`);
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TABLE IF NOT EXISTS cdc.raw_purchase_events (
    `order_id` UUID,
    `customer_id` String,
    `session_id` Nullable(String),
    `order_time` DateTime64(6, 'UTC'),
    `items` String,
    `item_count` Int32,
    `total_amount` Decimal(12, 2),
    `currency` String,
    `payment_method` String,
    `order_status` String,
    `shipping_country` String,
    `kafka_partition` Int32,
    `kafka_offset` Int64,
    `ingested_at` DateTime64(6, 'UTC'),
    `_version` UInt64,
    `_is_deleted` UInt8,
    `_op` LowCardinality(String),
    `_source_ts_ms` Int64,
    `_synced_at` DateTime64(6, 'UTC') DEFAULT now64(6)
) ENGINE = ReplacingMergeTree(_version, _is_deleted)
ORDER BY (`order_id`);
-- +goose StatementEnd

-- +goose Down
DROP TABLE IF EXISTS cdc.raw_purchase_events;
DROP TABLE IF EXISTS cdc.raw_web_events;
DROP TABLE IF EXISTS cdc.crm_customers;
