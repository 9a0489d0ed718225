{#-
  The big tables of a full build do not merge their parts while the run builds on them.

  stg_web_events and int_sessions are created with max_bytes_to_merge_at_max_space_in_pool = 1 (no
  part is small enough to merge), and on-run-end resets that setting on every table of the schema
  that has it, so ClickHouse merges their parts after the run. Reason: at 1M customers a full build
  inserts ~110-140 parts of stg_web_events (144M rows); merging them while the build ran took the
  same two cores the build needs. Measured on one 1M-customer mirror, the stg_web_events insert then
  int_sessions: 235 s + 265 s with merges, 105 s + 135 s without (same rows). int_sessions aggregates
  in session order across the unmerged parts; nothing reads them in a way that depends on the number
  of parts. If a run dies before on-run-end, the next run's end resets it.
-#}

{% macro resume_merges() -%}
  {%- if execute -%}
    {%- set deferred = run_query("select name from system.tables where database = '" ~ target.schema ~ "'
        and match(engine_full, 'max_bytes_to_merge_at_max_space_in_pool = 1(,|$)') order by name") -%}
    {%- for row in deferred.rows -%}
      {%- do run_query("alter table " ~ target.schema ~ "." ~ row[0]
                       ~ " reset setting max_bytes_to_merge_at_max_space_in_pool") -%}
    {%- endfor -%}
  {%- endif -%}
  select 1
{%- endmacro %}
