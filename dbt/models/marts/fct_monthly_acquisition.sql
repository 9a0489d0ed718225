{#- Signups by month and acquisition channel, and how many of them placed a completed order within
    30 days of signing up (days signup_date .. signup_date + 29). Live customers only (a deleted
    customer leaves no attributes). `is_complete`: every signup of the month has had its 30 days
    before the snapshot date; `has_order_history`: the month starts after the first order in the
    mirror, so the 30-day figures are observable (older signups predate the event history). -#}
{{ config(materialized='table', order_by=['signup_month', 'acquisition_channel']) }}

{%- set snapshot = snapshot_date() %}

with customers as (
    select customer_id, signup_date, acquisition_channel
    from {{ ref('stg_customers') }}
    where signup_date < {{ snapshot }}
),

first_30d as (
    select
        p.customer_id                                   as customer_id,
        count()                                         as n_orders,
        sum(p.revenue)                                  as rev
    from {{ ref('stg_purchase_events') }} as p
    inner join customers as c on c.customer_id = p.customer_id
    where p.is_completed
      and p.order_date >= c.signup_date
      and p.order_date < c.signup_date + 30
      and p.order_date < {{ snapshot }}
    group by p.customer_id
),

history as (
    select min(order_date) as first_order_date from {{ ref('stg_purchase_events') }}
)

select
    toStartOfMonth(c.signup_date)                                   as signup_month,
    c.acquisition_channel                                           as acquisition_channel,
    toInt32(count())                                                as signups,
    toInt32(countIf(f.n_orders > 0))                                as converted_30d,
    converted_30d / signups                                         as conversion_rate_30d,
    toInt32(sum(f.n_orders))                                        as orders_30d,
    toDecimal64(sum(f.rev), 2)                                      as revenue_30d,
    addMonths(signup_month, 1) + 29 <= {{ snapshot }}               as is_complete,
    signup_month >= (select first_order_date from history)          as has_order_history
from customers as c
left join first_30d as f on f.customer_id = c.customer_id
group by signup_month, acquisition_channel
