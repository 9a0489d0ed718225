{#- Lifetime orders per customer (everything the mirror holds). Incremental: customers with orders
    synced since the last watermark are recomputed over all their orders, old and new. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='customer_id',
    order_by='customer_id',
    post_hook=[
      "{{ delete_orphans('customer_id', 'select customer_id from ' ~ ref('stg_purchase_events'), ['raw_purchase_events']) }}",
      "{{ save_watermark() }}",
    ],
) }}
-- depends_on: {{ source('cdc', 'raw_purchase_events') }}
{%- set since = delta_since() if is_incremental() else none %}

select
    p.customer_id                                               as customer_id,
    toInt32(count())                                            as orders,
    toInt32(countIf(p.is_completed))                            as completed_orders,
    toInt32(countIf(p.order_status = 'cancelled'))              as cancelled_orders,
    toInt32(countIf(p.order_status = 'refunded'))               as refunded_orders,
    toDecimal64(sum(p.revenue), 2)                              as lifetime_revenue,
    if(completed_orders > 0, toFloat64(lifetime_revenue) / completed_orders, null) as avg_order_value,
    toInt32(sumIf(p.item_count, p.is_completed))                    as items_purchased,
    min(p.order_time)                                           as first_order_at,
    max(p.order_time)                                           as last_order_at,
    if(completed_orders > 0, minIf(p.order_time, p.is_completed), null) as first_completed_order_at,
    if(completed_orders > 0, maxIf(p.order_time, p.is_completed), null) as last_completed_order_at
from {{ ref('stg_purchase_events') }} as p
{%- if since is not none %}
where p.customer_id in ({{ changed_customers_orders(since) }})
{%- endif %}
group by p.customer_id
