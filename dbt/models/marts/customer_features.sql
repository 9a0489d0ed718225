{#- The customer_features contract (spark_ml/features.py, docs/customer_features.md): one row per live
    customer and snapshot date; the windows end the day before snapshot_date (data before
    snapshot_date 00:00 UTC counts). Older snapshots stay, so the table keeps each run's as-of view.

    Incremental (delete+insert on customer_id, snapshot_date): for a snapshot date the table does
    not hold yet, every live customer is computed; for the current one, only the customers touched
    since the last watermark (CRM changes, new events, new orders), over their full history. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['customer_id', 'snapshot_date'],
    on_schema_change='fail',
    order_by=['snapshot_date', 'customer_id'],
    post_hook=[
      "{{ delete_orphans('customer_id', 'select customer_id from ' ~ ref('stg_customers'), ['crm_customers']) }}",
      "{{ save_watermark() }}",
    ],
) }}
-- depends_on: {{ source('cdc', 'crm_customers') }}
-- depends_on: {{ source('cdc', 'raw_web_events') }}
-- depends_on: {{ source('cdc', 'raw_purchase_events') }}
{%- set snapshot = snapshot_date() %}
{%- set since = none %}
{%- set only_changed = false %}
{%- if is_incremental() and execute %}
  {%- set since = delta_since() %}
  {%- set have = run_query("select count() from " ~ this ~ " where snapshot_date = " ~ snapshot).columns[0].values()[0] %}
  {%- set only_changed = since is not none and have > 0 %}
{%- endif %}

with affected as (
    {%- if only_changed %}
    {{ changed_customers_crm(since) }}
    union distinct {{ changed_customers_web(since) }}
    union distinct {{ changed_customers_orders(since) }}
    {%- else %}
    select customer_id from {{ ref('stg_customers') }}
    {%- endif %}
),

customers as (
    select c.customer_id, c.signup_date, c.country, c.acquisition_channel, c.subscription_tier
    from {{ ref('stg_customers') }} as c
    where c.signup_date < {{ snapshot }}
      and c.customer_id in (select customer_id from affected)
),

rfm as (
    select r.customer_id, r.tenure_days, r.recency_days, r.frequency, r.monetary
    from {{ ref('int_customer_rfm') }} as r
    where r.customer_id in (select customer_id from customers)
),

sessions as (
    select
        s.customer_id                                                         as customer_id,
        uniqExactIf(s.session_id, s.session_date >= {{ snapshot }} - 7)      as n_sessions_7d,
        uniqExactIf(s.session_id, s.session_date >= {{ snapshot }} - 30)     as n_sessions_30d,
        uniqExactIf(s.session_id, s.session_date >= {{ snapshot }} - 90)     as n_sessions_90d,
        maxIf(s.last_login_at, toDate(s.last_login_at) < {{ snapshot }})              as last_login
    from {{ ref('int_sessions') }} as s
    where s.session_date < {{ snapshot }}
      and s.customer_id in (select customer_id from customers)
    group by s.customer_id
),

orders as (
    select
        p.customer_id                                                                       as customer_id,
        countIf(p.is_completed and p.order_date >= {{ snapshot }} - 7)                      as n_orders_7d,
        countIf(p.is_completed and p.order_date >= {{ snapshot }} - 30)                     as n_orders_30d,
        countIf(p.is_completed and p.order_date >= {{ snapshot }} - 90)                     as n_orders_90d,
        sumIf(p.revenue, p.order_date >= {{ snapshot }} - 90)                               as rev_90d,
        countIf(p.order_status = 'cancelled')                                               as n_cancelled,
        countIf(p.order_status = 'refunded')                                                as n_refunded
    from {{ ref('stg_purchase_events') }} as p
    where p.order_date < {{ snapshot }}
      and p.customer_id in (select customer_id from customers)
    group by p.customer_id
)

select
    toString(c.customer_id)                                                   as customer_id,
    {{ snapshot }}                                                            as snapshot_date,
    toDate(c.signup_date)                                                     as signup_date,
    toString(c.country)                                                       as country,
    toString(c.acquisition_channel)                                           as acquisition_channel,
    toString(c.subscription_tier)                                             as subscription_tier,
    toInt32(r.tenure_days)                                                    as tenure_days,
    toInt32(r.recency_days)                                                   as recency_days,
    toInt32(r.frequency)                                                      as frequency,
    toFloat64(r.monetary)                                                     as monetary,
    if(r.frequency > 0, toFloat64(r.monetary) / r.frequency, null)            as avg_order_value,
    toInt32(s.n_sessions_7d)                                                  as sessions_7d,
    toInt32(s.n_sessions_30d)                                                 as sessions_30d,
    toInt32(s.n_sessions_90d)                                                 as sessions_90d,
    toInt32(o.n_orders_7d)                                                    as orders_7d,
    toInt32(o.n_orders_30d)                                                   as orders_30d,
    toInt32(o.n_orders_90d)                                                   as orders_90d,
    toFloat64(o.rev_90d)                                                      as revenue_90d,
    (s.n_sessions_30d + 1) / (s.n_sessions_90d / 3 + 1)                       as activity_trend,
    if(s.n_sessions_90d > 0, o.n_orders_90d / s.n_sessions_90d, null)         as conversion_rate,
    toInt32(o.n_cancelled)                                                    as cancellations,
    toInt32(o.n_refunded)                                                     as refunds,
    if(s.last_login is null, null,
       toInt32(dateDiff('day', toDate(s.last_login), {{ snapshot }})))        as days_since_last_login
from customers as c
inner join rfm as r on r.customer_id = c.customer_id
left join sessions as s on s.customer_id = c.customer_id
left join orders as o on o.customer_id = c.customer_id
