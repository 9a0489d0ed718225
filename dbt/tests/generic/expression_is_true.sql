{#- Rows where `expression` is not true (the test passes when there are none). On a column the
    expression is still written out in full (column_name is accepted and ignored). -#}
{% test expression_is_true(model, expression, column_name=none) %}
select * from {{ model }} where not ({{ expression }})
{% endtest %}
