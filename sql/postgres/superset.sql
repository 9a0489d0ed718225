-- Superset's metadata database: its own database, owned by its own login role, nothing else.
-- Run by psql as the superuser with variables superset_db, superset_user, superset_password.
-- The local stack runs it before Superset's first start; compose runs it from superset-init.
-- Idempotent: the role and database are created once and the password kept in line with .env.

SELECT format('CREATE ROLE %I LOGIN', :'superset_user')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'superset_user') \gexec
ALTER ROLE :"superset_user" WITH LOGIN NOREPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'superset_password';
SELECT format('CREATE DATABASE %I OWNER %I', :'superset_db', :'superset_user')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'superset_db') \gexec
REVOKE ALL ON DATABASE :"superset_db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"superset_db" TO :"superset_user";
