-- +goose Up
-- The churn model's scores (spark_ml/churn/score.py), loaded from the Iceberg table lakehouse.ml.churn_scores
-- after each scoring run, as the segments are: one partition per run (a reload replaces it), the run
-- registered in ml.churn_scoring_runs only after its partition holds every row, and churn_scores_latest
-- showing exactly the newest registered run: one row per live customer.
CREATE TABLE IF NOT EXISTS ml.churn_scores (
  run_id String,
  customer_id String,
  snapshot_date Date,
  scored_at DateTime64(3, 'UTC'),
  model_name LowCardinality(String),
  model_version String,
  p_churn Float64,
  risk_band LowCardinality(String),
  reason_1 Nullable(String),
  reason_2 Nullable(String),
  reason_3 Nullable(String),
  expected_value Float64,
  revenue_at_risk Float64,
  next_best_action LowCardinality(String),
  country LowCardinality(String),
  subscription_tier LowCardinality(String),
  loaded_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = MergeTree PARTITION BY run_id ORDER BY customer_id;

CREATE TABLE IF NOT EXISTS ml.churn_scoring_runs (
  run_id String,
  snapshot_date Date,
  customers UInt64,
  model_name String,
  model_version String,
  mean_p_churn Float64,
  revenue_at_risk Float64,
  metrics String,
  loaded_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(loaded_at) ORDER BY run_id;

CREATE VIEW IF NOT EXISTS ml.churn_scores_latest AS
  SELECT * FROM ml.churn_scores WHERE run_id = (SELECT max(run_id) FROM ml.churn_scoring_runs);

-- Each trained model version's reliability on its rolling backtests (spark_ml/churn/train.py): per bin of
-- predicted probability (10 equal-width bins), the mean prediction against the observed churn rate.
CREATE TABLE IF NOT EXISTS ml.churn_model_calibration (
  model_name LowCardinality(String),
  model_version String,
  mlflow_run_id String,
  bin UInt8,
  mean_p Float64,
  observed_rate Float64,
  rows UInt64,
  created_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(created_at) ORDER BY (model_name, model_version, bin);

-- the calibration of the model version that made the latest scores
CREATE VIEW IF NOT EXISTS ml.churn_calibration_latest AS
  SELECT * FROM ml.churn_model_calibration FINAL
  WHERE (model_name, model_version) IN (SELECT model_name, model_version FROM ml.churn_scoring_runs
                                        ORDER BY run_id DESC LIMIT 1);

-- +goose Down
DROP VIEW IF EXISTS ml.churn_calibration_latest;
DROP TABLE IF EXISTS ml.churn_model_calibration;
DROP VIEW IF EXISTS ml.churn_scores_latest;
DROP TABLE IF EXISTS ml.churn_scoring_runs;
DROP TABLE IF EXISTS ml.churn_scores;
