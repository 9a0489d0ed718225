-- Live customers (latest version of each key, deletes removed), typed, e-mail hashed.
select
    customer_id,
    {{ hash_email('email') }}                 as email_sha256,
    toDate(signup_date)                       as signup_date,
    upper(trimBoth(country))                  as country,
    acquisition_channel,
    subscription_tier,
    updated_at,
    _version,
    _synced_at
from {{ source('cdc', 'crm_customers') }} final
where _is_deleted = 0
