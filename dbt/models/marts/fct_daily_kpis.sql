{#- Daily KPIs: active customers (a session or an order that day), sessions, conversion, orders,
    revenue (completed orders) and average order value. Sessions count on the day of their first
    event, orders on their order day. Incremental: delete+insert on kpi_date for the days touched
    by changed events (whole sessions) and orders, recomputed from all of that day's data. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='kpi_date',
    order_by='kpi_date',
    post_hook=[
      "{{ delete_orphans('kpi_date', 'select session_date from ' ~ ref('int_sessions') ~ ' union distinct select order_date from ' ~ ref('stg_purchase_events'), ['raw_web_events', 'raw_purchase_events']) }}",
      "{{ save_watermark() }}",
    ],
) }}
-- depends_on: {{ source('cdc', 'raw_web_events') }}
-- depends_on: {{ source('cdc', 'raw_purchase_events') }}
{%- set since = delta_since() if is_incremental() else none %}

-- `days` is read only when incremental (since is not none)
with days as (  -- noqa: ST03
    {%- if since is not none %}
    {{ changed_session_dates(since) }}
    union distinct
    {{ changed_order_dates(since) }}
    {%- else %}
    select 1 where 0
    {%- endif %}
),

activity as (
    select
        s.session_date                              as kpi_date,
        s.customer_id                               as customer_id,
        toUInt8(1)                                  as is_session,
        toUInt8(s.converted)                        as is_converted,
        toUInt8(0)                                  as is_order,
        toUInt8(0)                                  as is_completed,
        toUInt8(0)                                  as is_cancelled,
        toUInt8(0)                                  as is_refunded,
        toDecimal64(0, 2)                           as order_revenue
    from {{ ref('int_sessions') }} as s
    {%- if since is not none %}
    where s.session_date in (select * from days)
    {%- endif %}
    union all
    select
        p.order_date,
        p.customer_id,
        0, 0, 1,
        toUInt8(p.is_completed),
        toUInt8(p.order_status = 'cancelled'),
        toUInt8(p.order_status = 'refunded'),
        toDecimal64(p.revenue, 2)
    from {{ ref('stg_purchase_events') }} as p
    {%- if since is not none %}
    where p.order_date in (select * from days)
    {%- endif %}
)

select
    kpi_date,
    toInt32(uniqExact(customer_id))                                 as active_customers,
    toInt32(uniqExactIf(customer_id, is_session = 1))               as active_web_customers,
    toInt32(sum(is_session))                                        as sessions,
    toInt32(sum(is_converted))                                      as converted_sessions,
    if(sessions > 0, converted_sessions / sessions, null)           as session_conversion_rate,
    toInt32(sum(is_order))                                          as orders,
    toInt32(sum(is_completed))                                      as completed_orders,
    toInt32(sum(is_cancelled))                                      as cancelled_orders,
    toInt32(sum(is_refunded))                                       as refunded_orders,
    toDecimal64(sum(order_revenue), 2)                              as revenue,
    if(completed_orders > 0, toFloat64(revenue) / completed_orders, null) as avg_order_value,
    toInt32(uniqExactIf(customer_id, is_completed = 1))             as buying_customers
from activity
group by kpi_date
