-- +goose Up
-- Customer master data (its data contract). Written by the customer simulator, changed over time
-- (profile updates, tier changes, deletions) so CDC carries inserts, updates and deletes.
CREATE TABLE crm.customers (
    customer_id         text        PRIMARY KEY,
    email               text        NOT NULL,          -- PII: hashed before it reaches any mart
    signup_date         date        NOT NULL,
    country             char(2)     NOT NULL,
    acquisition_channel text        NOT NULL,
    subscription_tier   text        NOT NULL,
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX customers_updated_at_idx ON crm.customers (updated_at);

-- +goose Down
DROP TABLE crm.customers;
