{#- One row per live customer: CRM attributes (e-mail only as its SHA-256), lifetime orders and web
    activity, and the RFM scores and segment as of the snapshot date. No raw PII. -#}
{{ config(materialized='table', order_by='customer_id', query_settings={'join_use_nulls': 1}) }}

select
    c.customer_id                                                   as customer_id,
    c.email_sha256                                                  as email_sha256,
    c.signup_date                                                   as signup_date,
    toStartOfMonth(c.signup_date)                                   as signup_month,
    c.country                                                       as country,
    c.acquisition_channel                                           as acquisition_channel,
    c.subscription_tier                                             as subscription_tier,
    c.updated_at                                                    as updated_at,
    toInt32(ifNull(o.orders, 0))                                    as lifetime_orders,
    toInt32(ifNull(o.completed_orders, 0))                          as completed_orders,
    toDecimal64(ifNull(o.lifetime_revenue, 0), 2)                   as lifetime_revenue,
    o.first_order_at                                                as first_order_at,
    o.last_completed_order_at                                       as last_completed_order_at,
    toInt32(ifNull(w.sessions, 0))                                  as lifetime_sessions,
    w.first_session_at                                              as first_session_at,
    w.last_session_at                                               as last_session_at,
    w.main_device_type                                              as main_device_type,
    r.snapshot_date                                                 as rfm_snapshot_date,
    r.r_score                                                       as r_score,
    r.f_score                                                       as f_score,
    r.m_score                                                       as m_score,
    r.rfm_segment                                                   as rfm_segment
from {{ ref('stg_customers') }} as c
left join {{ ref('int_customer_orders') }} as o on o.customer_id = c.customer_id
left join {{ ref('int_customer_web_activity') }} as w on w.customer_id = c.customer_id
left join {{ ref('int_customer_rfm') }} as r on r.customer_id = c.customer_id
