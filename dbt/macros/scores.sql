{#- Quintile score 1..5 of `column` among all rows: rank-based, so ties share a score and the
    result never depends on row order (ntile would split ties arbitrarily). `higher_is_better`
    false (recency) gives the lowest values the 5. -#}
{% macro quintile_score(column, higher_is_better=true) -%}
  toUInt8(1 + intDiv(5 * (rank() over (order by {{ column }} {{ 'asc' if higher_is_better else 'desc' }}) - 1),
                     count() over ()))
{%- endmacro %}
