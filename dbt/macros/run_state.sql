{#-
  Run state shared by every model of one dbt invocation, and the per-model watermarks of the
  incremental models. Both live in the target schema:

  dbt_run_state   one row per invocation (on-run-start): the high watermark (newest _synced_at in
                  the CDC mirror when the run started) and the snapshot date of the as-of models.
  dbt_watermarks  one row per incremental model (ReplacingMergeTree by updated_at): the run high
                  watermark of its last successful build, written by its post-hook after the
                  delete+insert succeeded. The next run re-reads every source row synced after
                  (that watermark - var('watermark_lookback_seconds')).

  Computing both once per invocation keeps every model of a run consistent with every other.
-#}

{% macro cdc_table(name) -%}
  {{ var('cdc_database') }}.{{ name }}
{%- endmacro %}

{% macro _fmt_ts(value) -%}
  {%- if value is string -%}{{ value }}{%- else -%}{{ value.strftime('%Y-%m-%d %H:%M:%S.%f') }}{%- endif -%}
{%- endmacro %}

{% macro _state_queries() %}
  {% set db = var('cdc_database') %}
  {% set q = {} %}
  {% do q.update({'high_watermark': "select greatest(
      (select max(_synced_at) from " ~ cdc_table('crm_customers') ~ "),
      (select max(_synced_at) from " ~ cdc_table('raw_web_events') ~ "),
      (select max(_synced_at) from " ~ cdc_table('raw_purchase_events') ~ "))"}) %}
  {#- the day after the newest event, order or signup: every row of the mirror is before it -#}
  {% do q.update({'snapshot_date': "select toDate(greatest(
      (select max(event_time) from " ~ cdc_table('raw_web_events') ~ " final where _is_deleted = 0),
      (select max(order_time) from " ~ cdc_table('raw_purchase_events') ~ " final where _is_deleted = 0),
      (select toDateTime64(max(signup_date), 6, 'UTC') from " ~ cdc_table('crm_customers') ~ " final where _is_deleted = 0)
    )) + 1"}) %}
  {{ return(q) }}
{% endmacro %}

{% macro init_run_state() %}
  {%- if execute -%}
    {% do run_query("create database if not exists " ~ target.schema) %}
    {% do run_query("create table if not exists " ~ target.schema ~ ".dbt_run_state (
        invocation_id String, started_at DateTime64(6, 'UTC'), high_watermark DateTime64(6, 'UTC'),
        snapshot_date Date) engine = MergeTree order by (started_at, invocation_id)") %}
    {% do run_query("create table if not exists " ~ target.schema ~ ".dbt_watermarks (
        model String, watermark DateTime64(6, 'UTC'), snapshot_date Date, invocation_id String,
        updated_at DateTime64(6, 'UTC')) engine = ReplacingMergeTree(updated_at) order by model") %}
    {%- set q = _state_queries() -%}
    {%- set snapshot = "toDate('" ~ var('snapshot_date') ~ "')" if var('snapshot_date') else "(" ~ q['snapshot_date'] ~ ")" -%}
    insert into {{ target.schema }}.dbt_run_state
    select '{{ invocation_id }}', now64(6), ({{ q['high_watermark'] }}), {{ snapshot }}
  {%- else -%}
    select 1
  {%- endif -%}
{% endmacro %}

{#- {'high_watermark': 'YYYY-MM-DD hh:mm:ss.ffffff', 'snapshot_date': 'YYYY-MM-DD'} of this invocation -#}
{% macro run_state() %}
  {% if not execute %}
    {{ return({'high_watermark': '1970-01-01 00:00:00.000000',
               'snapshot_date': var('snapshot_date') or '1970-01-01'}) }}
  {% endif %}
  {% set rows = run_query("select high_watermark, snapshot_date from " ~ target.schema ~ ".dbt_run_state
                           where invocation_id = '" ~ invocation_id ~ "' limit 1").rows %}
  {% if rows | length == 0 %}
    {#- no on-run-start in this invocation (e.g. `dbt compile -s ...` without hooks): compute it now -#}
    {% set q = _state_queries() %}
    {% set hwm = run_query(q['high_watermark']).columns[0].values()[0] %}
    {% set snap = var('snapshot_date') or run_query(q['snapshot_date']).columns[0].values()[0] %}
    {{ return({'high_watermark': _fmt_ts(hwm), 'snapshot_date': snap | string}) }}
  {% endif %}
  {{ return({'high_watermark': _fmt_ts(rows[0][0]), 'snapshot_date': rows[0][1] | string}) }}
{% endmacro %}

{#- The snapshot date as a SQL Date literal. A var wins (no query: dbt unit tests set it). -#}
{% macro snapshot_date() -%}
  {%- if var('snapshot_date') -%}
    toDate('{{ var('snapshot_date') }}')
  {%- else -%}
    toDate('{{ run_state()['snapshot_date'] }}')
  {%- endif -%}
{%- endmacro %}

{#- The watermark of this model's last successful build, or none. -#}
{% macro last_watermark() %}
  {% if not execute %}{{ return(none) }}{% endif %}
  {% set rows = run_query("select argMax(watermark, updated_at), count() from " ~ target.schema ~ ".dbt_watermarks
                           where model = '" ~ this.identifier ~ "'").rows %}
  {% if rows | length == 0 or rows[0][1] == 0 %}{{ return(none) }}{% endif %}
  {{ return(_fmt_ts(rows[0][0])) }}
{% endmacro %}

{#- SQL lower bound on _synced_at for the rows this incremental run must look at, or none (= all rows). -#}
{% macro delta_since() %}
  {% set wm = last_watermark() %}
  {% if wm is none %}{{ return(none) }}{% endif %}
  {{ return("(toDateTime64('" ~ wm ~ "', 6, 'UTC') - toIntervalSecond(" ~ var('watermark_lookback_seconds') ~ "))") }}
{% endmacro %}

{#- post-hook of every incremental model: remember the run's high watermark once the model is built -#}
{% macro save_watermark() -%}
  {%- if execute -%}
    {%- set st = run_state() -%}
    insert into {{ target.schema }}.dbt_watermarks (model, watermark, snapshot_date, invocation_id, updated_at)
    values ('{{ this.identifier }}', toDateTime64('{{ st['high_watermark'] }}', 6, 'UTC'),
            toDate('{{ st['snapshot_date'] }}'), '{{ invocation_id }}', now64(6))
  {%- else -%}
    select 1
  {%- endif -%}
{%- endmacro %}

{#- The high watermark `model` was last built with, as a SQL DateTime64 expression (reconciliation
    tests compare only keys no row of which was synced after it: the mirror keeps changing while
    CDC streams, and those keys are the next run's work). Falls back to this run's watermark. -#}
{% macro built_watermark(model) -%}
  {%- set wm = none -%}
  {%- if execute -%}
    {%- set rows = run_query("select argMax(watermark, updated_at), count() from " ~ target.schema
                             ~ ".dbt_watermarks where model = '" ~ model ~ "'").rows -%}
    {%- if rows | length > 0 and rows[0][1] > 0 -%}{%- set wm = _fmt_ts(rows[0][0]) -%}{%- endif -%}
  {%- endif -%}
  toDateTime64('{{ wm or run_state()['high_watermark'] }}', 6, 'UTC')
{%- endmacro %}
