{#- The incremental staging table holds exactly the mirror's live events in their latest version
    (events synced after the table's build watermark are left out on both sides). -#}
{%- set since = built_watermark('stg_web_events') %}
with touched as (
    select toString(event_id) as event_id from {{ source('cdc', 'raw_web_events') }} where _synced_at > {{ since }}
),
model as (
    select count() as n, sum(cityHash64(event_id, _version)) as h
    from {{ ref('stg_web_events') }}
    where event_id not in (select event_id from touched)
),
mirror as (
    select count() as n, sum(cityHash64(toString(event_id), _version)) as h
    from {{ source('cdc', 'raw_web_events') }} final
    where _is_deleted = 0 and toString(event_id) not in (select event_id from touched)
)
select model.n, mirror.n as mirror_n from model, mirror
where model.n != mirror.n or model.h != mirror.h
