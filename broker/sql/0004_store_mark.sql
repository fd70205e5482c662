-- 0004_store_mark.sql: the number of the store's last committed
-- transaction that wrote delivery updates (SENT, ACK, NACK, requeue,
-- dead, revoked). Each such transaction moves it from the number the
-- broker last read to the next one, and fails if another moved it first.
-- When the connection is lost while a COMMIT is on its way, the broker
-- reads it after reconnecting to learn whether that transaction
-- committed, so that it writes the updates it still holds exactly once
-- (broker/store.c, "Updates held over a failure").
create table store_mark (
    id    integer primary key check (id = 1),
    batch bigint not null
);
insert into store_mark (id, batch) values (1, 0);
-- A database set up with examples/roles.sql before this migration: the
-- broker's runtime role moves the mark (roles.sql grants it too).
do $$ begin
    if exists (select from pg_roles where rolname = 'maillage_broker') then
        grant select, update on store_mark to maillage_broker;
    end if;
end $$;
