{#- stg_customers.email_sha256 is SHA-256 hex of lower(trim(email)) of the live source row. -#}
select s.customer_id
from {{ ref('stg_customers') }} as s
inner join (
    select customer_id, email from {{ source('cdc', 'crm_customers') }} final where _is_deleted = 0
) as src on src.customer_id = s.customer_id
where s.email_sha256 != lower(hex(SHA256(lower(trimBoth(src.email)))))
