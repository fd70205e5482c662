-- 0001_init.sql: the tables of DESIGN.md "Database", the documented
-- interface that operators and auditors query. Applied by the broker at
-- start, in one transaction, recorded in schema_migrations.
--
-- Invariant: a message is confirmed only after the transaction that
-- holds it, its deliveries and its consent decisions has committed.

create table agencies (
    id          text primary key,          -- agency id (PROTOCOL.md §2)
    name        text not null,
    public_keys text[] not null default '{}',
    publish     text[] not null default '{}',
    subscribe   text[] not null default '{}',
    updated_at  timestamptz not null default now()
);

create table messages (
    id          uuid primary key,          -- the publisher's idempotency key
    seq         bigint not null unique,    -- the broker's order of storage
    type        text not null,
    version     integer not null check (version >= 1),
    sender      text not null,             -- the authenticated agency
    subject     text,
    purpose     text,
    correlation text,
    occurred_at timestamptz,
    received_at timestamptz not null,
    body        bytea                      -- msgpack as received; null once purged
);
create sequence messages_seq as bigint owned by messages.seq;
alter table messages alter column seq set default nextval('messages_seq');
create index messages_subject on messages (subject) where subject is not null;
create index messages_correlation on messages (correlation) where correlation is not null;

create table deliveries (
    id            bigserial primary key,   -- the delivery id of DELIVER/ACK
    message_id    uuid not null references messages (id),
    recipient     text not null,
    state         text not null default 'pending'
                  check (state in ('pending', 'inflight', 'acked', 'dead', 'revoked')),
    attempts      integer not null default 0,
    last_error    text,
    first_sent_at timestamptz,
    settled_at    timestamptz,
    updated_at    timestamptz not null default now(),
    unique (message_id, recipient)
);
-- each recipient's queue, in seq order of its messages
create index deliveries_pending on deliveries (recipient, id) where state = 'pending';
create index deliveries_dead on deliveries (recipient) where state = 'dead';

create table delivery_events (
    id          bigserial primary key,
    delivery_id bigint not null references deliveries (id),
    attempt     integer not null,
    event       text not null
                check (event in ('nack', 'requeued', 'dead', 'replayed', 'revoked')),
    reason      text,
    actor       text not null,             -- the client's session or the operator
    at          timestamptz not null default now()
);
create index delivery_events_delivery on delivery_events (delivery_id);

create table consents (
    id                 uuid primary key,   -- the consent_id of consent.granted
    subject            text not null,
    parties            text[] not null,
    purposes           text[] not null,
    categories         text[] not null,
    valid_from         timestamptz not null,
    valid_until        timestamptz,
    revoked_at         timestamptz,
    granted_by         text not null,
    granted_message_id uuid not null references messages (id),
    revoked_message_id uuid references messages (id)
);
create index consents_subject on consents (subject);

create table consent_decisions (
    id         bigserial primary key,
    message_id uuid not null references messages (id),
    recipient  text not null,
    decision   text not null check (decision in ('allow', 'deny')),
    basis      text not null
               check (basis in ('consent', 'legal_obligation', 'consent_notice', 'not_personal')),
    consent_id uuid references consents (id),
    reason     text,                       -- REVOKED, EXPIRED, NOT_COVERED, NO_CONSENT
    decided_at timestamptz not null
);
create index consent_decisions_message on consent_decisions (message_id);
