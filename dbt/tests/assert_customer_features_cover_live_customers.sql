{#- The current snapshot of customer_features has exactly the live customers of the mirror who
    signed up before the snapshot date: none missing, none extra (deleted customers are gone).
    Customers changed in the CRM after the mart's build watermark are the next run's work. -#}
{%- set snapshot = snapshot_date() %}
{%- set since = built_watermark('customer_features') %}
with touched as (
    {{ changed_customers_crm(since) }}
),
features as (
    select customer_id from {{ ref('customer_features') }}
    where snapshot_date = {{ snapshot }} and customer_id not in (select customer_id from touched)
),
live as (
    select customer_id from {{ source('cdc', 'crm_customers') }} final
    where _is_deleted = 0 and signup_date < {{ snapshot }} and customer_id not in (select customer_id from touched)
)
select 'missing' as problem, customer_id from live where customer_id not in (select customer_id from features)
union all
select 'not live', customer_id from features where customer_id not in (select customer_id from live)
