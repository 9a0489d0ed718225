{{ config(materialized='view') }}
select order_id, customer_id, amount, status, updated_at
from {{ source('src', 'orders') }}
