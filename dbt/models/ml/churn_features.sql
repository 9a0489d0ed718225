{#- The churn model's point-in-time rows (spark_ml/churn/training.py reads them; docs/churn_model.md).

    One row per (customer, cutoff_date). Every feature of a row reads only what happened before its
    cutoff (days < cutoff_date, customer versions changed before it); only the label looks after it.
    - Training rows (is_training = 1): cutoffs every churn_cutoff_step_days days, the newest
      churn_horizon_days before snapshot_date, so each label window [cutoff, cutoff + horizon) lies
      inside the data. Only customers active in the horizon before their cutoff: for a customer already
      gone, "will they churn" is no longer a question, and would only teach the model recency.
      churned = 1 when the customer has no web session and no order in the label window.
    - Scoring rows (is_training = 0): cutoff = snapshot_date, every live customer, no label.
    Customers deleted at the source (asked to be forgotten) have no rows at all. An order's status is
    the latest known (the sources keep no history of order statuses), so a cancellation or refund after
    a cutoff shows in that cutoff's completed-order features. The table is rebuilt
    from the run's frozen mirror on every run, so rows, labels and features all share its cutoff. -#}
{{ config(order_by=['cutoff_date', 'customer_id']) }}
{%- set snapshot = snapshot_date() %}
{%- set horizon = var('churn_horizon_days') | int %}
{%- set step = var('churn_cutoff_step_days') | int %}

with live as (
    select customer_id, signup_date from {{ ref('stg_customers') }}
),

-- sessions on the day they start; logins on the day they happen (a session's has_login would count a
-- login after midnight on the session's first day, a day before it happened)
web_days as (
    select customer_id, day, sum(sessions) as sessions, sum(logins) as logins
    from (
        select customer_id, session_date as day, count() as sessions, toUInt64(0) as logins
        from {{ ref('int_sessions') }}
        where session_date < {{ snapshot }} and customer_id in (select customer_id from live)
        group by customer_id, day
        union all
        select customer_id, toDate(event_time) as day, toUInt64(0) as sessions, count() as logins
        from {{ ref('stg_web_events') }}
        where event_type = 'login' and toDate(event_time) < {{ snapshot }}
          and customer_id in (select customer_id from live)
        group by customer_id, day
    )
    group by customer_id, day
),

-- any order counts as activity for the label; completed ones for frequency and revenue
order_days as (
    select
        customer_id,
        order_date                                   as day,
        count()                                      as orders,
        countIf(is_completed)                        as completed,
        toFloat64(sum(revenue))                      as revenue,
        countIf(order_status = 'cancelled')          as cancelled,
        countIf(order_status = 'refunded')           as refunded
    from {{ ref('stg_purchase_events') }}
    where order_date < {{ snapshot }} and customer_id in (select customer_id from live)
    group by customer_id, day
),

activity as (
    select
        customer_id, day,
        sum(sessions) as sessions, sum(logins) as logins, sum(orders) as orders, sum(completed) as completed,
        sum(revenue) as revenue, sum(cancelled) as cancelled, sum(refunded) as refunded
    from (
        select customer_id, day, sessions, logins, toUInt64(0) as orders, toUInt64(0) as completed,
               toFloat64(0) as revenue, toUInt64(0) as cancelled, toUInt64(0) as refunded
        from web_days
        union all
        select customer_id, day, toUInt64(0), toUInt64(0), orders, completed, revenue, cancelled, refunded
        from order_days
    )
    group by customer_id, day
),

cutoffs as (
    select {{ snapshot }} as cutoff_date, toUInt8(0) as is_training
    union all
    select toDate({{ snapshot }} - {{ horizon }} - number * {{ step }}) as cutoff_date, toUInt8(1) as is_training
    from numbers({{ var('churn_cutoffs') | int }})
    where cutoff_date >= (select min(day) from activity) + {{ var('churn_min_history_days') | int }}
),

windows as (
    select
        a.customer_id                                                                          as customer_id,
        c.cutoff_date                                                                          as cutoff_date,
        sumIf(a.sessions, a.day >= c.cutoff_date - 7 and a.day < c.cutoff_date)                as sessions_7d,
        sumIf(a.sessions, a.day >= c.cutoff_date - 30 and a.day < c.cutoff_date)               as sessions_30d,
        sumIf(a.sessions, a.day >= c.cutoff_date - 90 and a.day < c.cutoff_date)               as sessions_90d,
        maxIf(toNullable(a.day), a.sessions > 0 and a.day < c.cutoff_date)                     as last_session_day,
        maxIf(toNullable(a.day), a.logins > 0 and a.day < c.cutoff_date)                       as last_login_day,
        sumIf(a.completed, a.day >= c.cutoff_date - 30 and a.day < c.cutoff_date)              as orders_30d,
        sumIf(a.completed, a.day >= c.cutoff_date - 90 and a.day < c.cutoff_date)              as orders_90d,
        sumIf(a.revenue, a.day >= c.cutoff_date - 90 and a.day < c.cutoff_date)                as revenue_90d,
        sumIf(a.completed, a.day < c.cutoff_date)                                              as frequency,
        sumIf(a.revenue, a.day < c.cutoff_date)                                                as monetary,
        maxIf(toNullable(a.day), a.completed > 0 and a.day < c.cutoff_date)                    as last_order_day,
        sumIf(a.cancelled, a.day >= c.cutoff_date - 90 and a.day < c.cutoff_date)              as cancellations_90d,
        sumIf(a.refunded, a.day >= c.cutoff_date - 90 and a.day < c.cutoff_date)               as refunds_90d,
        sumIf(a.sessions + a.orders,
              a.day >= c.cutoff_date - {{ horizon }} and a.day < c.cutoff_date)                as activity_before,
        sumIf(a.sessions + a.orders,
              a.day >= c.cutoff_date and a.day < c.cutoff_date + {{ horizon }})                as activity_after
    from activity as a
    cross join cutoffs as c
    where a.day < c.cutoff_date + {{ horizon }}
    group by a.customer_id, c.cutoff_date
),

-- a customer's attributes as of a date: the newest version changed before it (the first version when
-- none was: a customer whose first row was mirrored after the date)
versions as (
    select customer_id, toDate(updated_at) as changed_on, (updated_at, _version) as ord,
           subscription_tier, country, acquisition_channel
    from {{ source('cdc', 'crm_customers_history') }}
    where _is_deleted = 0 and customer_id in (select customer_id from live)
),

attributes as (
    select
        v.customer_id                                                                            as customer_id,
        c.cutoff_date                                                                            as cutoff_date,
        countIf(v.changed_on < c.cutoff_date) > 0                                                as known,
        countIf(v.changed_on < c.cutoff_date - 30) > 0                                           as known_30d,
        if(known, argMaxIf(v.subscription_tier, v.ord, v.changed_on < c.cutoff_date),
           argMin(v.subscription_tier, v.ord))                                                   as tier,
        if(known_30d, argMaxIf(v.subscription_tier, v.ord, v.changed_on < c.cutoff_date - 30),
           argMin(v.subscription_tier, v.ord))                                                   as tier_30d_before,
        if(known, argMaxIf(v.country, v.ord, v.changed_on < c.cutoff_date), argMin(v.country, v.ord)) as country,
        if(known, argMaxIf(v.acquisition_channel, v.ord, v.changed_on < c.cutoff_date),
           argMin(v.acquisition_channel, v.ord))                                                 as acquisition_channel
    from versions as v
    cross join cutoffs as c
    group by v.customer_id, c.cutoff_date
)

select
    toString(l.customer_id)                                                          as customer_id,
    c.cutoff_date                                                                    as cutoff_date,
    c.is_training                                                                    as is_training,
    if(c.is_training = 1, toNullable(toUInt8(w.activity_after = 0)), null)           as churned,
    toUInt8(w.activity_before > 0)                                                   as active,
    toString(upper(trimBoth(a.country)))                                             as country,
    toString(a.acquisition_channel)                                                  as acquisition_channel,
    toString(a.tier)                                                                 as subscription_tier,
    toUInt8(indexOf(['free', 'basic', 'premium'], a.tier)
            < indexOf(['free', 'basic', 'premium'], a.tier_30d_before))              as tier_downgraded_30d,
    toUInt8(indexOf(['free', 'basic', 'premium'], a.tier)
            > indexOf(['free', 'basic', 'premium'], a.tier_30d_before))              as tier_upgraded_30d,
    toInt32(c.cutoff_date - toDate(l.signup_date))                                   as tenure_days,
    toInt32(w.sessions_7d)                                                           as sessions_7d,
    toInt32(w.sessions_30d)                                                          as sessions_30d,
    toInt32(w.sessions_90d)                                                          as sessions_90d,
    (w.sessions_7d + 1) / (w.sessions_30d * 7 / 30 + 1)                              as activity_trend,
    toNullable(toInt32(c.cutoff_date - w.last_session_day))                          as days_since_last_session,
    toNullable(toInt32(c.cutoff_date - w.last_login_day))                            as days_since_last_login,
    toInt32(w.orders_30d)                                                            as orders_30d,
    toInt32(w.orders_90d)                                                            as orders_90d,
    toFloat64(w.revenue_90d)                                                         as revenue_90d,
    toInt32(w.frequency)                                                             as frequency,
    toFloat64(w.monetary)                                                            as monetary,
    if(w.frequency > 0, w.monetary / w.frequency, null)                              as avg_order_value,
    toNullable(toInt32(c.cutoff_date - w.last_order_day))                            as recency_days,
    toInt32(w.cancellations_90d)                                                     as cancellations_90d,
    toInt32(w.refunds_90d)                                                           as refunds_90d
from live as l
cross join cutoffs as c
left join windows as w on w.customer_id = l.customer_id and w.cutoff_date = c.cutoff_date
left join attributes as a on a.customer_id = l.customer_id and a.cutoff_date = c.cutoff_date
where toDate(l.signup_date) < c.cutoff_date
  and (c.is_training = 0 or w.activity_before > 0)
