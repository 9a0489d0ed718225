-- +goose Up
-- The segmentation job's output (spark_ml), loaded from the Iceberg tables lakehouse.ml.* after each run.
-- One partition per run (run_id sorts by time): a reload replaces its partition, and the *_latest views
-- show exactly one run, the newest one registered in ml.segmentation_runs (registered after both tables
-- are loaded, so readers never see a half-loaded run).
CREATE TABLE IF NOT EXISTS ml.customer_segments (
  run_id String,
  customer_id String,
  snapshot_date Date,
  segment_id Int32,
  segment_name LowCardinality(String),
  distance Float64,
  scored_at DateTime64(3, 'UTC'),
  loaded_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = MergeTree PARTITION BY run_id ORDER BY (segment_id, customer_id);

CREATE TABLE IF NOT EXISTS ml.segment_profiles (
  run_id String,
  snapshot_date Date,
  segment_id Int32,
  segment_name LowCardinality(String),
  size Int64,
  share Float64,
  avg_distance Nullable(Float64),
  churn_rate Nullable(Float64),
  churned Nullable(Int64),
  avg_recency_days Nullable(Float64),
  avg_frequency Nullable(Float64),
  avg_monetary Nullable(Float64),
  avg_tenure_days Nullable(Float64),
  avg_sessions_7d Nullable(Float64),
  avg_sessions_30d Nullable(Float64),
  avg_sessions_90d Nullable(Float64),
  avg_orders_30d Nullable(Float64),
  avg_orders_90d Nullable(Float64),
  avg_activity_trend Nullable(Float64),
  avg_conversion_rate Nullable(Float64),
  avg_avg_order_value Nullable(Float64),
  avg_cancellations Nullable(Float64),
  avg_refunds Nullable(Float64),
  avg_days_since_last_login Nullable(Float64),
  created_at DateTime64(3, 'UTC'),
  loaded_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = MergeTree PARTITION BY run_id ORDER BY segment_id;

CREATE TABLE IF NOT EXISTS ml.segmentation_runs (
  run_id String,
  snapshot_date Date,
  customers UInt64,
  k Int32,
  silhouette Float64,
  overall_churn_rate Nullable(Float64),
  model_uri String,
  metrics String,
  loaded_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(loaded_at) ORDER BY run_id;

CREATE VIEW IF NOT EXISTS ml.customer_segments_latest AS
  SELECT * FROM ml.customer_segments WHERE run_id = (SELECT max(run_id) FROM ml.segmentation_runs);

CREATE VIEW IF NOT EXISTS ml.segment_profiles_latest AS
  SELECT * FROM ml.segment_profiles WHERE run_id = (SELECT max(run_id) FROM ml.segmentation_runs);

-- +goose Down
DROP VIEW IF EXISTS ml.segment_profiles_latest;
DROP VIEW IF EXISTS ml.customer_segments_latest;
DROP TABLE IF EXISTS ml.segmentation_runs;
DROP TABLE IF EXISTS ml.segment_profiles;
DROP TABLE IF EXISTS ml.customer_segments;
