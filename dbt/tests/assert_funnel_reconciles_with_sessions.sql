{#- fct_daily_funnel adds up to int_sessions per day, and int_sessions has one row per session of
    the mirror (sessions with events synced after int_sessions' build watermark left out). -#}
{%- set since = built_watermark('int_sessions') %}
with funnel as (
    select session_date, sum(sessions) as sessions, sum(converted_sessions) as converted
    from {{ ref('fct_daily_funnel') }} group by session_date
),
sessions as (
    select session_date, count() as sessions, countIf(converted) as converted
    from {{ ref('int_sessions') }} group by session_date
),
touched as (
    {{ changed_sessions(since) }}
),
mirror as (
    select uniqExact(session_id) as n from {{ source('cdc', 'raw_web_events') }} final
    where _is_deleted = 0 and session_id not in (select session_id from touched)
),
model as (
    select count() as n from {{ ref('int_sessions') }} where session_id not in (select session_id from touched)
)
select toString(f.session_date) as what, f.sessions as got, s.sessions as expected
from funnel as f
full outer join sessions as s on s.session_date = f.session_date
where f.sessions != s.sessions or f.converted != s.converted
union all
select 'sessions in the mirror', model.n as got, mirror.n as expected
from model, mirror
where model.n != mirror.n
