-- Orders, deduplicated by order_id (FINAL: latest version), deleted rows removed, typed.
-- Revenue counts completed orders only: cancelled and refunded orders bring in nothing.
select
    toString(order_id)                        as order_id,
    customer_id,
    session_id,
    order_time,
    toDate(order_time)                        as order_date,
    items,
    item_count,
    total_amount,
    currency,
    payment_method,
    order_status,
    order_status = 'completed'                as is_completed,
    if(order_status = 'completed', total_amount, toDecimal64(0, 2)) as revenue,
    upper(trimBoth(shipping_country))         as shipping_country,
    ingested_at,
    _version,
    _synced_at
from {{ source('cdc', 'raw_purchase_events') }} final
where _is_deleted = 0
