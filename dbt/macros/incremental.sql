{#-
  The incremental strategy (dbt/README.md): delete+insert keyed on the AFFECTED keys, recomputed
  over their FULL history.

  A key (customer, session, date) is affected when a source row that belongs to it was synced
  after the model's last watermark (minus the lookback margin). `changed_rows` returns every live
  version still in the mirror of each such source row, old and new, so an update that moves an
  order to another day or customer affects both the old and the new key. A delete (tombstone)
  carries only the row's id; its earlier version gives the keys while the mirror still holds it.
  The model then selects only the affected keys, computed from the whole (deduplicated) history,
  and dbt-clickhouse's delete+insert replaces exactly those keys: re-running adds nothing twice,
  and a key's totals always cover old and new rows together.
-#}

{#- all live versions of the source rows (of `source_name`) synced since `since` -#}
{% macro changed_rows(source_name, id_col, columns, since) -%}
  select {{ columns }}
  from {{ source('cdc', source_name) }}
  where _is_deleted = 0
    and {{ id_col }} in (select {{ id_col }} from {{ source('cdc', source_name) }} where _synced_at > {{ since }})
{%- endmacro %}

{#- keys of crm rows (inserts, updates, deletes: the tombstone carries the key) synced since `since` -#}
{% macro changed_customers_crm(since) -%}
  select customer_id from {{ source('cdc', 'crm_customers') }} where _synced_at > {{ since }}
{%- endmacro %}

{% macro changed_customers_web(since) -%}
  select customer_id from ({{ changed_rows('raw_web_events', 'event_id', 'customer_id', since) }})
{%- endmacro %}

{% macro changed_customers_orders(since) -%}
  select customer_id from ({{ changed_rows('raw_purchase_events', 'order_id', 'customer_id', since) }})
{%- endmacro %}

{% macro changed_sessions(since) -%}
  select session_id from ({{ changed_rows('raw_web_events', 'event_id', 'session_id', since) }})
{%- endmacro %}

{#- every day a changed session touches: its span in int_sessions (already rebuilt) covers the days
    of its old and new first event, plus the days of the changed rows' own versions -#}
{% macro changed_session_dates(since) -%}
  select arrayJoin(range(toUInt32(toDate(session_start)), toUInt32(toDate(session_end)) + 1))::Date as d
  from {{ ref('int_sessions') }}
  where session_id in ({{ changed_sessions(since) }})
  union distinct
  select toDate(event_time) from ({{ changed_rows('raw_web_events', 'event_id', 'event_time', since) }})
{%- endmacro %}

{% macro changed_order_dates(since) -%}
  select toDate(order_time) from ({{ changed_rows('raw_purchase_events', 'order_id', 'order_time', since) }})
{%- endmacro %}

{#- true when tombstones arrived since `since` in one of `source_names` (their keys may have to go) -#}
{% macro tombstones_since(source_names, since) %}
  {% if not execute %}{{ return(false) }}{% endif %}
  {% set parts = [] %}
  {% for name in source_names %}
    {% do parts.append("(select count() from " ~ source('cdc', name) ~ " where _is_deleted = 1"
                       ~ (" and _synced_at > " ~ since if since is not none else "") ~ ")") %}
  {% endfor %}
  {% set n = run_query("select " ~ parts | join(" + ")).columns[0].values()[0] %}
  {{ return(n > 0) }}
{% endmacro %}

{#- post-hook: after tombstones, drop keys that no longer exist anywhere in the source
    (delete+insert only replaces keys that the new data still has) -#}
{% macro delete_orphans(key_expr, universe_sql, source_names) -%}
  {%- if execute and is_incremental() and tombstones_since(source_names, delta_since()) -%}
    delete from {{ this }} where {{ key_expr }} not in ({{ universe_sql }})
  {%- else -%}
    select 1
  {%- endif -%}
{%- endmacro %}

{#- post-hook of an incremental staging table keyed like its source: drop the keys whose latest
    version in the mirror is a delete (delete+insert cannot: they are not in the new data).
    `key_expr` turns the source key into the model's (e.g. toString(event_id)). -#}
{% macro delete_deleted_source_rows(key, source_name, key_expr) -%}
  {%- if execute and is_incremental() -%}
    {%- set since = delta_since() -%}
    {%- set src = source('cdc', source_name) -%}
    {%- if since is none -%}
      delete from {{ this }} where {{ key }} not in (select {{ key_expr }} from {{ src }} final where _is_deleted = 0)
    {%- elif tombstones_since([source_name], since) -%}
      delete from {{ this }}
      where {{ key }} in (select {{ key_expr }} from {{ src }} where _is_deleted = 1 and _synced_at > {{ since }})
        and {{ key }} not in (
            select {{ key_expr }} from {{ src }} final
            where _is_deleted = 0
              and {{ key }} in (select {{ key }} from {{ src }} where _is_deleted = 1 and _synced_at > {{ since }}))
    {%- else -%}
      select 1
    {%- endif -%}
  {%- else -%}
    select 1
  {%- endif -%}
{%- endmacro %}
