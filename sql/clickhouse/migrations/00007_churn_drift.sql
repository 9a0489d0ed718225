-- +goose Up
-- Drift of each scoring run against the scoring model's training data (spark_ml/churn/drift.py): per feature
-- and for the score (feature = 'p_churn'), PSI over the training deciles or categories and the two-sample KS;
-- alert = PSI > 0.2. The pipeline's churn_drift_alerts task turns alerts into ops.alerts rows.
CREATE TABLE IF NOT EXISTS ml.churn_drift (
  run_id String,
  model_name LowCardinality(String),
  model_version String,
  feature LowCardinality(String),
  kind LowCardinality(String),
  psi Float64,
  ks Nullable(Float64),
  ks_pvalue Nullable(Float64),
  alert UInt8,
  rows UInt64,
  computed_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = MergeTree ORDER BY (run_id, feature);

-- +goose Down
DROP TABLE IF EXISTS ml.churn_drift;
