{#- The conversion funnel by day (of the session's first event), country and device of the session,
    and the customer's acquisition channel ('unknown' when the customer is not, or no longer, in
    the CRM). Incremental: delete+insert on session_date; a day is rebuilt whole (all its groups)
    when a session on it changed or when a customer with sessions on it changed in the CRM. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='session_date',
    order_by=['session_date', 'country', 'device_type', 'acquisition_channel'],
    post_hook=[
      "{{ delete_orphans('session_date', 'select session_date from ' ~ ref('int_sessions'), ['raw_web_events']) }}",
      "{{ save_watermark() }}",
    ],
) }}
-- depends_on: {{ source('cdc', 'crm_customers') }}
-- depends_on: {{ source('cdc', 'raw_web_events') }}
{%- set since = delta_since() if is_incremental() else none %}

with sessions as (
    select s.*
    from {{ ref('int_sessions') }} as s
    {%- if since is not none %}
    where s.session_date in (
        {{ changed_session_dates(since) }}
        union distinct
        select session_date from {{ ref('int_sessions') }}
        where customer_id in ({{ changed_customers_crm(since) }})
    )
    {%- endif %}
)

select
    s.session_date                                                  as session_date,
    s.country                                                       as country,
    s.device_type                                                   as device_type,
    if(c.customer_id = '', 'unknown', c.acquisition_channel)        as acquisition_channel,
    toInt32(count())                                                as sessions,
    toInt32(countIf(s.reached_product_view))                        as product_view_sessions,
    toInt32(countIf(s.reached_add_to_cart))                         as add_to_cart_sessions,
    toInt32(countIf(s.reached_checkout_start))                      as checkout_start_sessions,
    toInt32(countIf(s.reached_checkout_success))                    as checkout_success_sessions,
    toInt32(countIf(s.converted))                                   as converted_sessions,
    product_view_sessions / sessions                                as product_view_rate,
    add_to_cart_sessions / sessions                                 as add_to_cart_rate,
    checkout_start_sessions / sessions                              as checkout_start_rate,
    converted_sessions / sessions                                   as conversion_rate,
    if(checkout_start_sessions > 0, checkout_success_sessions / checkout_start_sessions, null)
                                                                    as checkout_completion_rate
from sessions as s
left join {{ ref('stg_customers') }} as c on c.customer_id = s.customer_id
group by s.session_date, s.country, s.device_type, acquisition_channel
