-- +goose Up
-- Late events one row each (the stream job upserts them by source and key), so a replay of records
-- already processed (after an upgrade, flink_jobs/pipeline.py Replay) rewrites the same rows instead
-- of restarting a per-minute count from zero. realtime.late_events_1m keeps its name and columns as
-- a view; the counts the previous job version wrote (one row per minute, no event keys) stay in
-- realtime.late_events_1m_v1 and are added in.
CREATE TABLE realtime.late_events (
    source          text        NOT NULL,   -- web_events | purchase_events
    event_key       text        NOT NULL,   -- event_id / order_id
    window_start    timestamptz NOT NULL,   -- the 1-minute window of its event time
    event_time      timestamptz NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, event_key)
);
CREATE INDEX late_events_window ON realtime.late_events (window_start);

ALTER TABLE realtime.late_events_1m RENAME TO late_events_1m_v1;
CREATE VIEW realtime.late_events_1m AS
SELECT window_start, source, sum(late_events)::bigint AS late_events, max(updated_at) AS updated_at
FROM (
    SELECT window_start, source, late_events, updated_at FROM realtime.late_events_1m_v1
    UNION ALL
    SELECT window_start, source, 1, recorded_at FROM realtime.late_events
) counted
GROUP BY window_start, source;

-- +goose Down
DROP VIEW realtime.late_events_1m;
ALTER TABLE realtime.late_events_1m_v1 RENAME TO late_events_1m;
DROP TABLE realtime.late_events;
