{#- Lifetime web activity per customer (everything the mirror holds). Incremental: customers with
    events synced since the last watermark are recomputed over all their sessions. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='customer_id',
    order_by='customer_id',
    post_hook=[
      "{{ delete_orphans('customer_id', 'select customer_id from ' ~ ref('int_sessions'), ['raw_web_events']) }}",
      "{{ save_watermark() }}",
    ],
) }}
-- depends_on: {{ source('cdc', 'raw_web_events') }}
{%- set since = delta_since() if is_incremental() else none %}

select
    s.customer_id                                       as customer_id,
    min(s.session_start)                                as first_session_at,
    max(s.session_end)                                  as last_session_at,
    toInt32(count())                                    as sessions,
    toInt32(countIf(s.converted))                       as converted_sessions,
    toInt32(sum(s.events))                              as events,
    toInt32(sum(s.page_views))                          as page_views,
    toInt32(sum(s.product_views))                       as product_views,
    toInt32(uniqExact(s.session_date))                  as active_days,
    toInt32(sum(s.duration_seconds))                    as total_session_seconds,
    max(s.last_login_at)                                as last_login_at,
    -- the device of most sessions (ties: alphabetical)
    sumMap(map(s.device_type, toUInt64(1)))             as device_sessions,
    arraySort(x -> (-toInt64(x.2), x.1),
              arrayZip(mapKeys(device_sessions), mapValues(device_sessions)))[1].1 as main_device_type
from {{ ref('int_sessions') }} as s
{%- if since is not none %}
where s.customer_id in ({{ changed_customers_web(since) }})
{%- endif %}
group by s.customer_id
