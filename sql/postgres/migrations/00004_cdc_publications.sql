-- +goose Up
-- CDC (Debezium, debezium/connectors/*.json): one publication per connector, created here by the
-- superuser because the replication role has no CREATE (the connectors run with
-- publication.autocreate.mode=disabled). Each publication also carries cdc.heartbeat: the
-- connectors' heartbeat.action.query writes it, so even when the captured tables are idle the
-- slot sees a change, Debezium confirms a newer LSN and the slot does not retain WAL without bound.
-- The schema cdc and the CDC role's grants on it come from sql/postgres/roles.sql.
CREATE SCHEMA IF NOT EXISTS cdc;
CREATE TABLE cdc.heartbeat (
    connector text        PRIMARY KEY,   -- the Debezium connector's name
    beat_at   timestamptz NOT NULL
);
CREATE PUBLICATION cdc_crm FOR TABLE crm.customers, cdc.heartbeat;
CREATE PUBLICATION cdc_raw FOR TABLE raw.web_events, raw.purchase_events, cdc.heartbeat;

-- +goose Down
DROP PUBLICATION IF EXISTS cdc_raw;
DROP PUBLICATION IF EXISTS cdc_crm;
DROP TABLE cdc.heartbeat;
