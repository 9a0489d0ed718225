{#- Performance by customer country as of the snapshot date, from customer_features: customers,
    activity, orders, revenue, conversion and the share of customers without a session in 30 days. -#}
{{ config(materialized='table', order_by='country') }}

{%- set snapshot = snapshot_date() %}

select
    f.country                                                       as country,
    {{ snapshot }}                                                  as snapshot_date,
    toInt32(count())                                                as customers,
    toInt32(countIf(f.sessions_30d > 0))                            as active_customers_30d,
    toInt32(countIf(f.orders_90d > 0))                              as buyers_90d,
    toInt32(sum(f.sessions_30d))                                    as sessions_30d,
    toInt32(sum(f.sessions_90d))                                    as sessions_90d,
    toInt32(sum(f.orders_90d))                                      as orders_90d,
    round(sum(f.revenue_90d), 2)                                    as revenue_90d,
    toInt32(sum(f.frequency))                                       as lifetime_orders,
    round(sum(f.monetary), 2)                                       as lifetime_revenue,
    if(lifetime_orders > 0, lifetime_revenue / lifetime_orders, null) as avg_order_value,
    if(sessions_90d > 0, orders_90d / sessions_90d, null)           as conversion_rate_90d,
    avgIf(f.recency_days, f.frequency > 0)                          as avg_recency_days,
    countIf(f.sessions_30d = 0) / count()                           as inactive_30d_share,
    countIf(f.subscription_tier = 'premium') / count()              as premium_share
from {{ ref('customer_features') }} as f
where f.snapshot_date = {{ snapshot }}
group by f.country
