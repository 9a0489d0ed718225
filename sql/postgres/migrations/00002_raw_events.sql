-- +goose Up
-- Raw events as the stream job writes them: the event's own id is the primary key, so a
-- replayed or duplicated event is an idempotent upsert, never a second row.
CREATE TABLE raw.web_events (
    event_id        uuid        PRIMARY KEY,
    customer_id     text        NOT NULL,
    session_id      text        NOT NULL,
    event_type      text        NOT NULL,
    page_url        text,
    product_id      text,
    search_query    text,
    device_type     text        NOT NULL,
    country         char(2)     NOT NULL,
    utm_source      text,
    event_time      timestamptz NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    ingested_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX web_events_customer_time_idx ON raw.web_events (customer_id, event_time);
CREATE INDEX web_events_time_idx ON raw.web_events (event_time);

CREATE TABLE raw.purchase_events (
    order_id         uuid          PRIMARY KEY,
    customer_id      text          NOT NULL,
    session_id       text,
    order_time       timestamptz   NOT NULL,
    items            jsonb         NOT NULL,  -- [{"product_id", "quantity", "unit_price"}]
    item_count       integer       NOT NULL,  -- sum of quantities
    total_amount     numeric(12,2) NOT NULL,
    currency         char(3)       NOT NULL,
    payment_method   text          NOT NULL,
    order_status     text          NOT NULL CHECK (order_status IN ('completed', 'cancelled', 'refunded')),
    shipping_country char(2)       NOT NULL,
    kafka_partition  integer       NOT NULL,
    kafka_offset     bigint        NOT NULL,
    ingested_at      timestamptz   NOT NULL DEFAULT now()
);
CREATE INDEX purchase_events_customer_time_idx ON raw.purchase_events (customer_id, order_time);
CREATE INDEX purchase_events_time_idx ON raw.purchase_events (order_time);

-- +goose Down
DROP TABLE raw.purchase_events;
DROP TABLE raw.web_events;
