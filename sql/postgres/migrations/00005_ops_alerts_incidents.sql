-- +goose Up
-- Operations log written by Airflow (airflow/dags): alerts from failed tasks (the DAGs' failure
-- callback) and incidents the streaming_health DAG found (and what it did about them). The schema
-- ops and the Airflow role's INSERT/SELECT on it come from sql/postgres/roles.sql.
CREATE SCHEMA IF NOT EXISTS ops;
CREATE TABLE ops.alerts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    raised_at   timestamptz NOT NULL DEFAULT now(),
    dag_id      text        NOT NULL,
    run_id      text        NOT NULL,
    task_id     text,
    try_number  integer,
    error       text        NOT NULL,      -- the exception's one-line message
    log_url     text                       -- the task instance's log in the Airflow UI
);
CREATE INDEX alerts_raised_at ON ops.alerts (raised_at);
CREATE TABLE ops.incidents (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    detected_at timestamptz NOT NULL DEFAULT now(),
    component   text        NOT NULL,      -- flink-job, connector:<name>, consumer-lag:<group>, dead-letter
    problem     text        NOT NULL,      -- what the check saw
    action      text        NOT NULL,      -- what was done: restarted, resubmitted, none (alert only)
    resolved    boolean     NOT NULL,      -- the component was healthy again after the action
    dag_run_id  text
);
CREATE INDEX incidents_detected_at ON ops.incidents (detected_at);

-- +goose Down
DROP TABLE ops.incidents;
DROP TABLE ops.alerts;
