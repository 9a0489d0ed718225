-- +goose Up
-- cdc: the ReplacingMergeTree mirror of PostgreSQL that the CDC sink writes.
CREATE DATABASE IF NOT EXISTS cdc;
-- analytics: dbt's models (staging, intermediate, marts).
CREATE DATABASE IF NOT EXISTS analytics;
-- ml: customer segments and profiles loaded back from the segmentation job.
CREATE DATABASE IF NOT EXISTS ml;

-- +goose Down
DROP DATABASE IF EXISTS ml;
DROP DATABASE IF EXISTS analytics;
DROP DATABASE IF EXISTS cdc;
