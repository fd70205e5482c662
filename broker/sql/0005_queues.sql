-- 0005_queues.sql: the queues in the database's documented interface,
-- so that the broker, its HTTP listener and the operator's CLI read and
-- move them one way (DESIGN.md, "Database").
--
-- queue_depth: one row per registered agency: its pending and dead
-- deliveries, and how long its oldest pending one has waited (seconds,
-- 0 when none waits).
create view queue_depth as
select a.id as agency,
       a.name,
       count(d.id) filter (where d.state = 'pending') as pending,
       count(d.id) filter (where d.state = 'dead') as dead,
       coalesce(extract(epoch from clock_timestamp()
                - min(m.received_at) filter (where d.state = 'pending')), 0)::float8
           as oldest_pending_seconds
from agencies a
left join deliveries d on d.recipient = a.id and d.state in ('pending', 'dead')
left join messages m on m.id = d.message_id
group by a.id, a.name;

-- replay_dead(ids, agency, actor): dead deliveries back to pending,
-- those whose id is in `ids`, or else all of `agency`'s; each gets a
-- 'replayed' row in delivery_events by `actor`, and the broker is told
-- on the channel maillage_replay which queues to read again (it LISTENs
-- there). Returns the deliveries replayed, in id order.
create function replay_dead(ids bigint[], agency text, actor text)
returns table (id bigint, recipient text)
language sql volatile as $$
    with r as (
        update deliveries d
           set state = 'pending', attempts = 0, settled_at = null, updated_at = now()
         where d.state = 'dead'
           and (($1 is not null and d.id = any($1)) or ($2 is not null and d.recipient = $2))
        returning d.id, d.recipient),
    e as (
        insert into delivery_events (delivery_id, attempt, event, reason, actor)
        select r.id, 0, 'replayed', 'replayed by an operator', $3 from r),
    n as (select pg_notify('maillage_replay', r.recipient) from r group by r.recipient)
    select r.id, r.recipient from r, (select count(*) from n) as told order by r.id
$$;

-- Databases set up with examples/roles.sql before this migration.
do $$ begin
    if exists (select from pg_roles where rolname = 'maillage_broker') then
        grant select on queue_depth to maillage_broker;
    end if;
    if exists (select from pg_roles where rolname = 'maillage_operator') then
        grant select on queue_depth to maillage_operator;
    end if;
end $$;
