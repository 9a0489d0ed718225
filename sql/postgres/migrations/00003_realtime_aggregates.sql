-- +goose Up
-- Real-time aggregates from the stream job, one row per 1-minute tumbling window and
-- dimension. The key is the window and its dimensions, so a late event within the allowed
-- lateness re-emits its window as an upsert.
CREATE TABLE realtime.web_metrics_1m (
    window_start     timestamptz NOT NULL,
    window_end       timestamptz NOT NULL,
    country          char(2)     NOT NULL,
    device_type      text        NOT NULL,
    page_views       bigint      NOT NULL,
    product_views    bigint      NOT NULL,
    add_to_carts     bigint      NOT NULL,
    checkouts        bigint      NOT NULL,
    sessions         bigint      NOT NULL,
    unique_customers bigint      NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (window_start, country, device_type)
);

CREATE TABLE realtime.order_metrics_1m (
    window_start    timestamptz   NOT NULL,
    window_end      timestamptz   NOT NULL,
    country         char(2)       NOT NULL,
    payment_method  text          NOT NULL,
    orders          bigint        NOT NULL,
    revenue         numeric(14,2) NOT NULL,
    items           bigint        NOT NULL,
    avg_order_value numeric(12,2) NOT NULL,
    updated_at      timestamptz   NOT NULL DEFAULT now(),
    PRIMARY KEY (window_start, country, payment_method)
);

-- sessions active in a sliding window (size and slide set by the stream job)
CREATE TABLE realtime.active_sessions (
    window_start    timestamptz NOT NULL,
    window_end      timestamptz NOT NULL,
    active_sessions bigint      NOT NULL,
    active_customers bigint     NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (window_start, window_end)
);

-- events that arrived after their window closed (beyond the allowed lateness): counted, not lost
CREATE TABLE realtime.late_events_1m (
    window_start timestamptz NOT NULL,
    source       text        NOT NULL,   -- web_events | purchase_events
    late_events  bigint      NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (window_start, source)
);

-- +goose Down
DROP TABLE realtime.late_events_1m;
DROP TABLE realtime.active_sessions;
DROP TABLE realtime.order_metrics_1m;
DROP TABLE realtime.web_metrics_1m;
