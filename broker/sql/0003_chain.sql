-- 0003_chain.sql: the tamper-evident audit trail. Every message and every
-- consent decision stored from now on takes the next position of one
-- chain (chain_seq, in commit order) and carries a link: BLAKE2b-256 of
-- the previous link and of the row's content (broker/chain.c says exactly
-- which bytes). A message's body is covered through body_hash, so a purge
-- may clear the body and the chain still verifies. chain_head holds the
-- last position and link, so rows removed at the end show too.
-- `maillage verify` walks it.
alter table messages add column chain_seq bigint unique;
alter table messages add column body_hash bytea;
alter table messages add column link bytea;
alter table consent_decisions add column chain_seq bigint unique;
alter table consent_decisions add column link bytea;

create table chain_head (
    id        integer primary key check (id = 1),
    chain_seq bigint not null,            -- the last position written
    link      bytea not null,             -- its link (32 zero bytes before any)
    started   timestamptz not null default now()  -- rows stored before are not chained
);
insert into chain_head (id, chain_seq, link) values (1, 0, '\x0000000000000000000000000000000000000000000000000000000000000000');
