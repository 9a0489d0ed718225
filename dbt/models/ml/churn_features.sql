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

-- Each customer's days of activity and versions as arrays, one row per customer: every (customer,
-- cutoff) row below reads its windows from them. Grouping the activity by (customer, cutoff) instead
-- (a cross join of every active day with every cutoff, ~25 cutoffs per day) took 385 s at 1M customers.
histories as (
    select customer_id,
           arraySort(x -> x.1, groupArray((day, sessions, logins, orders, completed, revenue, cancelled,
                                            refunded))) as days
    from activity
    group by customer_id
),

-- a customer's attributes as of a date: the newest version changed before it (the first version when
-- none was: a customer whose first row was mirrored after the date); versions sorted by (updated_at, _version)
versions as (
    select customer_id,
           arraySort(x -> x.1, groupArray(((updated_at, _version), toDate(updated_at),
                                            subscription_tier, country, acquisition_channel))) as versions
    from {{ source('cdc', 'crm_customers_history') }}
    where _is_deleted = 0 and customer_id in (select customer_id from live)
    group by customer_id
),

customer_cutoffs as (
    select
        l.customer_id                                                                          as customer_id,
        l.signup_date                                                                          as signup_date,
        c.cutoff_date                                                                          as cutoff_date,
        c.is_training                                                                          as is_training,
        -- days: (day, sessions, logins, orders, completed, revenue, cancelled, refunded)
        arraySum(x -> if(x.1 >= c.cutoff_date - 7 and x.1 < c.cutoff_date, x.2, 0), h.days)    as sessions_7d,
        arraySum(x -> if(x.1 >= c.cutoff_date - 30 and x.1 < c.cutoff_date, x.2, 0), h.days)   as sessions_30d,
        arraySum(x -> if(x.1 >= c.cutoff_date - 90 and x.1 < c.cutoff_date, x.2, 0), h.days)   as sessions_90d,
        arrayMax(x -> if(x.2 > 0 and x.1 < c.cutoff_date, toNullable(x.1), null), h.days)      as last_session_day,
        arrayMax(x -> if(x.3 > 0 and x.1 < c.cutoff_date, toNullable(x.1), null), h.days)      as last_login_day,
        arraySum(x -> if(x.1 >= c.cutoff_date - 30 and x.1 < c.cutoff_date, x.5, 0), h.days)   as orders_30d,
        arraySum(x -> if(x.1 >= c.cutoff_date - 90 and x.1 < c.cutoff_date, x.5, 0), h.days)   as orders_90d,
        arraySum(x -> if(x.1 >= c.cutoff_date - 90 and x.1 < c.cutoff_date, x.6, 0), h.days)   as revenue_90d,
        arraySum(x -> if(x.1 < c.cutoff_date, x.5, 0), h.days)                                 as frequency,
        arraySum(x -> if(x.1 < c.cutoff_date, x.6, 0), h.days)                                 as monetary,
        arrayMax(x -> if(x.5 > 0 and x.1 < c.cutoff_date, toNullable(x.1), null), h.days)      as last_order_day,
        arraySum(x -> if(x.1 >= c.cutoff_date - 90 and x.1 < c.cutoff_date, x.7, 0), h.days)   as cancellations_90d,
        arraySum(x -> if(x.1 >= c.cutoff_date - 90 and x.1 < c.cutoff_date, x.8, 0), h.days)   as refunds_90d,
        arraySum(x -> if(x.1 >= c.cutoff_date - {{ horizon }} and x.1 < c.cutoff_date,
                         x.2 + x.4, 0), h.days)                                                as activity_before,
        arraySum(x -> if(x.1 >= c.cutoff_date and x.1 < c.cutoff_date + {{ horizon }},
                         x.2 + x.4, 0), h.days)                                                as activity_after,
        -- versions: ((updated_at, _version), changed_on, tier, country, channel), oldest first
        arrayLast(x -> x.2 < c.cutoff_date, v.versions)                                        as as_of,
        arrayLast(x -> x.2 < c.cutoff_date - 30, v.versions)                                   as as_of_30d_before,
        if(arrayExists(x -> x.2 < c.cutoff_date, v.versions), as_of, v.versions[1])            as attributes,
        if(arrayExists(x -> x.2 < c.cutoff_date - 30, v.versions),
           as_of_30d_before, v.versions[1])                                                    as attributes_30d_before
    -- the joins first: they then probe one row per customer, not one per (customer, cutoff)
    from live as l
    left join histories as h on h.customer_id = l.customer_id
    left join versions as v on v.customer_id = l.customer_id
    cross join cutoffs as c
    where toDate(l.signup_date) < c.cutoff_date
)

select
    toString(r.customer_id)                                                          as customer_id,
    r.cutoff_date                                                                    as cutoff_date,
    r.is_training                                                                    as is_training,
    if(r.is_training = 1, toNullable(toUInt8(r.activity_after = 0)), null)           as churned,
    toUInt8(r.activity_before > 0)                                                   as active,
    toString(upper(trimBoth(r.attributes.4)))                                        as country,
    toString(r.attributes.5)                                                         as acquisition_channel,
    toString(r.attributes.3)                                                         as subscription_tier,
    toUInt8(indexOf(['free', 'basic', 'premium'], r.attributes.3)
            < indexOf(['free', 'basic', 'premium'], r.attributes_30d_before.3))      as tier_downgraded_30d,
    toUInt8(indexOf(['free', 'basic', 'premium'], r.attributes.3)
            > indexOf(['free', 'basic', 'premium'], r.attributes_30d_before.3))      as tier_upgraded_30d,
    toInt32(r.cutoff_date - toDate(r.signup_date))                                   as tenure_days,
    toInt32(r.sessions_7d)                                                           as sessions_7d,
    toInt32(r.sessions_30d)                                                          as sessions_30d,
    toInt32(r.sessions_90d)                                                          as sessions_90d,
    (r.sessions_7d + 1) / (r.sessions_30d * 7 / 30 + 1)                              as activity_trend,
    toNullable(toInt32(r.cutoff_date - r.last_session_day))                          as days_since_last_session,
    toNullable(toInt32(r.cutoff_date - r.last_login_day))                            as days_since_last_login,
    toInt32(r.orders_30d)                                                            as orders_30d,
    toInt32(r.orders_90d)                                                            as orders_90d,
    toFloat64(r.revenue_90d)                                                         as revenue_90d,
    toInt32(r.frequency)                                                             as frequency,
    toFloat64(r.monetary)                                                            as monetary,
    if(r.frequency > 0, r.monetary / r.frequency, null)                              as avg_order_value,
    toNullable(toInt32(r.cutoff_date - r.last_order_day))                            as recency_days,
    toInt32(r.cancellations_90d)                                                     as cancellations_90d,
    toInt32(r.refunds_90d)                                                           as refunds_90d
from customer_cutoffs as r
where r.is_training = 0 or r.activity_before > 0
