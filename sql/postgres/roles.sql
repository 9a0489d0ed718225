-- Roles and grants: one login role per component, each with only what it needs.
-- Run by psql as the superuser, connected to the platform database, with variables
-- db, admin_user, cdc_user/cdc_password, stream_user/stream_password, bi_user/bi_password,
-- simulator_user/simulator_password, iceberg_user/iceberg_password, airflow_user/airflow_password, airflow_db,
-- superset_user/superset_password, superset_db, mlflow_user/mlflow_password, mlflow_db,
-- churn_api_user/churn_api_password.
-- The local stack runs it on every `make up`; compose runs it from its init service.
-- Idempotent: roles are created once and their passwords kept in line with .env.

SELECT format('CREATE ROLE %I LOGIN', :'cdc_user')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'cdc_user') \gexec
SELECT format('CREATE ROLE %I LOGIN', :'stream_user')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'stream_user') \gexec
SELECT format('CREATE ROLE %I LOGIN', :'bi_user')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'bi_user') \gexec
SELECT format('CREATE ROLE %I LOGIN', :'simulator_user')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'simulator_user') \gexec

-- CDC (Debezium): logical replication and reading the captured tables for snapshots.
-- Publications are created by the platform (superuser), so this role needs no CREATE.
ALTER ROLE :"cdc_user" WITH LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'cdc_password';
-- Stream job (Flink): upserts into raw events and real-time aggregates; no DDL, no DELETE on raw.
ALTER ROLE :"stream_user" WITH LOGIN NOREPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'stream_password';
-- BI (Superset, notebooks): read-only.
ALTER ROLE :"bi_user" WITH LOGIN NOREPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'bi_password';
ALTER ROLE :"bi_user" SET default_transaction_read_only = on;
-- Customer simulator: maintains the customer master data (inserts, updates, deletes) only.
ALTER ROLE :"simulator_user" WITH LOGIN NOREPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'simulator_password';

REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"db" TO :"cdc_user", :"stream_user", :"bi_user", :"simulator_user";
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- The platform's schemas, owned by the superuser; tables come from sql/postgres migrations.
CREATE SCHEMA IF NOT EXISTS crm AUTHORIZATION :"admin_user";       -- customers (master data)
CREATE SCHEMA IF NOT EXISTS raw AUTHORIZATION :"admin_user";       -- raw events from the stream job
CREATE SCHEMA IF NOT EXISTS realtime AUTHORIZATION :"admin_user";  -- windowed aggregates

GRANT USAGE ON SCHEMA crm, raw, realtime TO :"cdc_user", :"bi_user";
GRANT USAGE ON SCHEMA raw, realtime TO :"stream_user";
GRANT USAGE ON SCHEMA crm TO :"simulator_user";

-- Existing tables ...
GRANT SELECT ON ALL TABLES IN SCHEMA crm, raw, realtime TO :"cdc_user", :"bi_user";
GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA raw, realtime TO :"stream_user";
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA crm TO :"simulator_user";
-- ... and every table the superuser creates later (migrations).
ALTER DEFAULT PRIVILEGES FOR ROLE :"admin_user" IN SCHEMA crm, raw, realtime
  GRANT SELECT ON TABLES TO :"cdc_user", :"bi_user";
ALTER DEFAULT PRIVILEGES FOR ROLE :"admin_user" IN SCHEMA raw, realtime
  GRANT SELECT, INSERT, UPDATE ON TABLES TO :"stream_user";
ALTER DEFAULT PRIVILEGES FOR ROLE :"admin_user" IN SCHEMA crm
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"simulator_user";
-- The real-time aggregates are the stream job's changelog: when its planner retracts a window row
-- (seen on bursts of replayed history), Flink's JDBC upsert sink issues a DELETE for it, and without
-- the grant the job crash-loops. Raw tables stay append/upsert only (no DELETE).
GRANT DELETE ON ALL TABLES IN SCHEMA realtime TO :"stream_user";
ALTER DEFAULT PRIVILEGES FOR ROLE :"admin_user" IN SCHEMA realtime GRANT DELETE ON TABLES TO :"stream_user";

-- CDC bookkeeping (schema cdc): the Debezium connectors' heartbeat table (created by the
-- migration 00004_cdc_publications.sql, which also creates the publications) is the one table the
-- replication role may write: its heartbeat.action.query upserts one row per connector.
CREATE SCHEMA IF NOT EXISTS cdc AUTHORIZATION :"admin_user";
GRANT USAGE ON SCHEMA cdc TO :"cdc_user";
GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA cdc TO :"cdc_user";
ALTER DEFAULT PRIVILEGES FOR ROLE :"admin_user" IN SCHEMA cdc
  GRANT SELECT, INSERT, UPDATE ON TABLES TO :"cdc_user";

-- Iceberg catalog (pyiceberg's SQL catalog and Spark's Iceberg JdbcCatalog share its tables,
-- iceberg_tables and iceberg_namespace_properties, which the catalog creates on first use):
-- it may create and use tables in schema `iceberg` only, which is first on its search_path.
SELECT format('CREATE ROLE %I LOGIN', :'iceberg_user')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'iceberg_user') \gexec
ALTER ROLE :"iceberg_user" WITH LOGIN NOREPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'iceberg_password';
ALTER ROLE :"iceberg_user" SET search_path = iceberg;
GRANT CONNECT ON DATABASE :"db" TO :"iceberg_user";
CREATE SCHEMA IF NOT EXISTS iceberg AUTHORIZATION :"admin_user";
GRANT USAGE, CREATE ON SCHEMA iceberg TO :"iceberg_user";

-- Airflow: owns its metadata database (variable airflow_db, created here so compose's init and
-- the local stack share it) and in the platform database may only record alerts and incidents
-- (schema ops, tables from migration 00005_ops_alerts_incidents.sql).
SELECT format('CREATE ROLE %I LOGIN', :'airflow_user')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'airflow_user') \gexec
ALTER ROLE :"airflow_user" WITH LOGIN NOREPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'airflow_password';
SELECT format('CREATE DATABASE %I OWNER %I', :'airflow_db', :'airflow_user')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'airflow_db') \gexec
GRANT CONNECT ON DATABASE :"db" TO :"airflow_user";
CREATE SCHEMA IF NOT EXISTS ops AUTHORIZATION :"admin_user";
GRANT USAGE ON SCHEMA ops TO :"airflow_user";
GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA ops TO :"airflow_user";
ALTER DEFAULT PRIVILEGES FOR ROLE :"admin_user" IN SCHEMA ops
  GRANT SELECT, INSERT ON TABLES TO :"airflow_user";

-- Superset: owns its metadata database and nothing else (it reads data as bi_user).
SELECT format('CREATE ROLE %I LOGIN', :'superset_user')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'superset_user') \gexec
ALTER ROLE :"superset_user" WITH LOGIN NOREPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'superset_password';
SELECT format('CREATE DATABASE %I OWNER %I', :'superset_db', :'superset_user')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'superset_db') \gexec
REVOKE ALL ON DATABASE :"superset_db" FROM PUBLIC;

-- MLflow: owns its tracking/registry database (its tables come from MLflow's own migrations) and
-- nothing in the platform database.
SELECT format('CREATE ROLE %I LOGIN', :'mlflow_user')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'mlflow_user') \gexec
ALTER ROLE :"mlflow_user" WITH LOGIN NOREPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'mlflow_password';
SELECT format('CREATE DATABASE %I OWNER %I', :'mlflow_db', :'mlflow_user')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'mlflow_db') \gexec
REVOKE ALL ON DATABASE :"mlflow_db" FROM PUBLIC;

-- Real-time churn scoring (churn-api): reads the raw events (a customer's newest web events and orders),
-- nothing else. Granted on the schema's tables by default privileges: the tables come from migrations,
-- which run after this script.
SELECT format('CREATE ROLE %I LOGIN', :'churn_api_user')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'churn_api_user') \gexec
ALTER ROLE :"churn_api_user" WITH LOGIN NOREPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'churn_api_password';
ALTER ROLE :"churn_api_user" SET default_transaction_read_only = on;
GRANT CONNECT ON DATABASE :"db" TO :"churn_api_user";
GRANT USAGE ON SCHEMA raw TO :"churn_api_user";
GRANT SELECT ON ALL TABLES IN SCHEMA raw TO :"churn_api_user";
ALTER DEFAULT PRIVILEGES FOR ROLE :"admin_user" IN SCHEMA raw GRANT SELECT ON TABLES TO :"churn_api_user";
