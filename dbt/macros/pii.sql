{#- PII: the SHA-256 (lower-case hex) of the normalised e-mail address (trimmed, lower case).
    Staging is the only layer that reads the raw column; nothing downstream ever sees it. -#}
{% macro hash_email(column) -%}
  lower(hex(SHA256(lower(trimBoth({{ column }})))))
{%- endmacro %}
