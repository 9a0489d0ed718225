{#- Recency / frequency / monetary of every live customer as of the snapshot date (orders before
    it), and their R/F/M quintile scores (1..5, rank-based: ties share a score). A table, rebuilt
    every run: a score depends on every other customer's value. -#}
{{ config(materialized='table', order_by='customer_id') }}

{%- set snapshot = snapshot_date() %}

with customers as (
    select customer_id, signup_date
    from {{ ref('stg_customers') }}
    where signup_date < {{ snapshot }}
),

orders as (
    select
        customer_id,
        countIf(is_completed)                   as n_completed,
        sum(revenue)                            as completed_revenue,
        maxIf(order_time, is_completed)         as last_completed_order_at
    from {{ ref('stg_purchase_events') }}
    where order_date < {{ snapshot }}
    group by customer_id
),

rfm as (
    select
        c.customer_id                                                       as customer_id,
        {{ snapshot }}                                                      as snapshot_date,
        c.signup_date                                                       as signup_date,
        toInt32(greatest(0, dateDiff('day', c.signup_date, {{ snapshot }}))) as tenure_days,
        toInt32(o.n_completed)                                              as frequency,
        toFloat64(o.completed_revenue)                                                as monetary,
        if(o.n_completed > 0, toDate(o.last_completed_order_at), null)      as last_order_date,
        toInt32(if(o.n_completed > 0,
                   greatest(0, dateDiff('day', toDate(o.last_completed_order_at), {{ snapshot }})),
                   tenure_days))                                            as recency_days
    from customers as c
    left join orders as o on o.customer_id = c.customer_id
)

select
    customer_id,
    snapshot_date,
    signup_date,
    tenure_days,
    recency_days,
    frequency,
    monetary,
    last_order_date,
    {{ quintile_score('recency_days', higher_is_better=false) }}   as r_score,
    {{ quintile_score('frequency') }}                              as f_score,
    {{ quintile_score('monetary') }}                               as m_score,
    concat(toString(r_score), toString(f_score), toString(m_score)) as rfm_cell,
    multiIf(frequency = 0,                    'no_purchase',
            r_score >= 4 and f_score >= 4,    'champions',
            r_score >= 3 and f_score >= 3,    'loyal',
            r_score >= 4,                     'recent',
            r_score <= 2 and f_score >= 3,    'at_risk',
            r_score <= 2,                     'hibernating',
                                              'needs_attention')   as rfm_segment
from rfm
