{#- Combinations of `columns` that occur more than once (a multi-column unique key). -#}
{% test unique_combination(model, columns) %}
select {{ columns | join(', ') }}, count() as n
from {{ model }}
group by {{ columns | join(', ') }}
having n > 1
{% endtest %}
