-- +goose Up
-- pipeline: the batch pipeline's own bookkeeping.
CREATE DATABASE IF NOT EXISTS pipeline;
-- The cutoff of each customer_analytics_pipeline run (dbt/cutoff.py): the frozen copy of the CDC
-- mirror that every dbt process of the run reads, and per source table its high watermark and rows.
CREATE TABLE IF NOT EXISTS pipeline.run_cutoffs (
  run_id String,
  source_table LowCardinality(String),
  snapshot_database String,
  high_watermark Nullable(DateTime64(6, 'UTC')),
  row_count UInt64,
  fixed_at DateTime64(6, 'UTC') DEFAULT now64(6)
) ENGINE = MergeTree ORDER BY (run_id, source_table);

-- +goose Down
DROP TABLE IF EXISTS pipeline.run_cutoffs;
DROP DATABASE IF EXISTS pipeline;
