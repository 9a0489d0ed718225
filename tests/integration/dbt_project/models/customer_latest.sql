-- delete+insert: the affected customers' rows are replaced by a recomputation over full history
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='customer_id',
          order_by='customer_id') }}
select customer_id, count() as orders, sum(amount) as revenue, max(updated_at) as last_update
from {{ ref('stg_orders') }}
{% if is_incremental() %}
where customer_id in (select customer_id from {{ ref('stg_orders') }}
                      where updated_at > (select max(last_update) from {{ this }}))
{% endif %}
group by customer_id
