{#- int_customer_orders holds every customer with orders, with their totals, as in the mirror
    (customers with orders synced after its build watermark left out). -#}
{%- set since = built_watermark('int_customer_orders') %}
with touched as (
    {{ changed_customers_orders(since) }}
    union distinct
    select customer_id from {{ source('cdc', 'raw_purchase_events') }} where _synced_at > {{ since }}
),
mirror as (
    select customer_id, count() as orders, sumIf(total_amount, order_status = 'completed') as revenue
    from {{ source('cdc', 'raw_purchase_events') }} final
    where _is_deleted = 0 and customer_id not in (select customer_id from touched)
    group by customer_id
),
model as (
    select * from {{ ref('int_customer_orders') }} where customer_id not in (select customer_id from touched)
)
select * from (
    select m.customer_id as mirror_customer, o.customer_id as mart_customer, m.orders as mirror_orders,
           o.orders as mart_orders, m.revenue as mirror_revenue, o.lifetime_revenue as mart_revenue
    from mirror as m
    full outer join model as o on o.customer_id = m.customer_id
)
where mirror_customer = '' or mart_customer = '' or mirror_orders != mart_orders or mirror_revenue != mart_revenue
