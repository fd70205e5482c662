-- 0006_referrals.sql: the referrals the broker follows (PROTOCOL.md §9),
-- in the database's documented interface (DESIGN.md, "Database").
-- Every row here is written in the transaction of the message that
-- makes it, so a leg never moves without its message stored, nor a
-- message without its move.
--
-- The broker's own notices about a referral are decided with the basis
-- service_notice (PROTOCOL.md §7).
alter table consent_decisions drop constraint consent_decisions_basis_check;
alter table consent_decisions add constraint consent_decisions_basis_check
    check (basis in ('consent', 'legal_obligation', 'consent_notice', 'service_notice',
                     'not_personal'));

-- referrals: one row per referral_id, from the referral.created that
-- used it first (also when none of its recipients was allowed).
create table referrals (
    referral_id uuid primary key,
    message_id  uuid not null,
    referrer    text not null,
    subject     text not null,
    service     text not null,
    priority    text not null,
    created_at  timestamptz not null
);
create index referrals_subject on referrals (subject);

-- referral_legs: one row per referral and recipient it was allowed to
-- reach. state: sent, received, waitlisted, accepted, started (open);
-- declined, completed, cancelled, superseded (closed). decided_at: its
-- first decision (waitlisted, accepted or declined), which stops the
-- clock; due_at: opened_at plus the configuration's deadline for its
-- service and priority; overdue_notified_at and overdue_message_id: the
-- broker's referral.overdue about it, once.
create table referral_legs (
    referral_id         uuid not null,
    recipient           text not null,
    referrer            text not null,
    subject             text not null,
    service             text not null,
    priority            text not null,
    state               text not null check (state in ('sent', 'received', 'waitlisted',
                            'accepted', 'started', 'declined', 'completed', 'cancelled',
                            'superseded')),
    opened_at           timestamptz not null,
    decided_at          timestamptz,
    closed_at           timestamptz,
    due_at              timestamptz not null,
    overdue_notified_at timestamptz,
    overdue_message_id  uuid,
    primary key (referral_id, recipient)
);
create index referral_legs_recipient on referral_legs (recipient, state);
create index referral_legs_subject on referral_legs (subject);

-- referral_moves: each move of a leg, by the message that made it (a
-- leg's opening has from_state null).
create table referral_moves (
    id          bigserial primary key,
    referral_id uuid not null,
    recipient   text not null,
    from_state  text,
    to_state    text not null,
    message_id  uuid not null,
    moved_at    timestamptz not null
);
create index referral_moves_leg on referral_moves (referral_id, recipient);

-- referral_duplicates: each open leg of another referral about the same
-- person and service found when a referral.created was stored; told or
-- not to its publisher (in the CONFIRM) and to that leg's recipient (in
-- the DELIVER of the new referral, when it got a leg of it too).
create table referral_duplicates (
    id                   bigserial primary key,
    referral_id          uuid not null,
    message_id           uuid not null,
    duplicate_of         uuid not null,
    duplicate_recipient  text not null,
    duplicate_referrer   text not null,
    duplicate_state      text not null,
    since                timestamptz not null,
    told_publisher       boolean not null,
    told_recipient       boolean not null,
    found_at             timestamptz not null
);
create index referral_duplicates_message on referral_duplicates (message_id);
create index referral_duplicates_referral on referral_duplicates (referral_id);

-- Referrals stored before this migration: the broker rebuilds their
-- legs from the stored messages once, on its first connection after
-- this migration (it needs the configuration's deadlines and the
-- messages' bodies), and deletes this row in the same transaction.
create table referral_rebuild (pending boolean primary key default true);
insert into referral_rebuild default values;

-- Databases set up with examples/roles.sql before this migration.
do $$ begin
    if exists (select from pg_roles where rolname = 'maillage_broker') then
        grant select, insert, update on referrals, referral_legs, referral_moves,
            referral_duplicates to maillage_broker;
        grant select, delete on referral_rebuild to maillage_broker;
        grant usage on sequence referral_moves_id_seq, referral_duplicates_id_seq
            to maillage_broker;
    end if;
    if exists (select from pg_roles where rolname = 'maillage_operator') then
        grant select on referrals, referral_legs, referral_moves, referral_duplicates
            to maillage_operator;
    end if;
end $$;
