-- default incremental strategy: new rows (by updated_at) are appended
{{ config(materialized='incremental', order_by='order_id', unique_key='order_id') }}
select order_id, customer_id, amount, status, updated_at
from {{ ref('stg_orders') }}
{% if is_incremental() %}
where updated_at > (select max(updated_at) from {{ this }})
{% endif %}
