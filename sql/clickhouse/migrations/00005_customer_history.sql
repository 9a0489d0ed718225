-- +goose Up
-- Every version of every customer row, kept. cdc.crm_customers is a ReplacingMergeTree: its merges keep
-- only the newest version of a key, so a customer's tier or country as it was last month is gone from it.
-- The churn model's point-in-time features (dbt model churn_features) need exactly that, so a materialized
-- view copies each block the CDC sink inserts into the mirror here, as it arrives. Versions are told apart
-- by updated_at (when the change happened at the source) and _version; the sink's at-least-once replays
-- repeat a (customer_id, _version) and collapse on merge. dbt/cutoff.py freezes this table with the mirror.
-- +goose StatementBegin
CREATE TABLE IF NOT EXISTS cdc.crm_customers_history AS cdc.crm_customers
ENGINE = ReplacingMergeTree ORDER BY (customer_id, _version);
-- +goose StatementEnd

-- +goose StatementBegin
CREATE MATERIALIZED VIEW IF NOT EXISTS cdc.crm_customers_history_mv TO cdc.crm_customers_history
AS SELECT * FROM cdc.crm_customers;
-- +goose StatementEnd

-- An install that mirrored customers before this migration: the versions its mirror still holds (those
-- already merged away are lost; their customers start their history at the newest version).
-- +goose StatementBegin
INSERT INTO cdc.crm_customers_history SELECT * FROM cdc.crm_customers;
-- +goose StatementEnd

-- +goose Down
DROP VIEW IF EXISTS cdc.crm_customers_history_mv;
DROP TABLE IF EXISTS cdc.crm_customers_history;
