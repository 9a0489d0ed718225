{#- fct_daily_funnel adds up to int_sessions per day, and int_sessions has one row per session of
    stg_web_events (sessions with events synced after int_sessions' build watermark left out).
    stg_web_events holds exactly the mirror's live events (assert_stg_web_events_match_mirror), so these
    are the mirror's sessions, counted without a second FINAL read of every web event. -#}
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
events as (
    select uniqExact(session_id) as n from {{ ref('stg_web_events') }}
    where session_id not in (select session_id from touched)
),
model as (
    select count() as n from {{ ref('int_sessions') }} where session_id not in (select session_id from touched)
)
select toString(f.session_date) as what, f.sessions as got, s.sessions as expected
from funnel as f
full outer join sessions as s on s.session_date = f.session_date
where f.sessions != s.sessions or f.converted != s.converted
union all
select 'sessions in stg_web_events', model.n as got, events.n as expected
from model, events
where model.n != events.n
