-- tables.sql: the outbox and inbox tables of the `sql` adapter plugin, in
-- the agency's own database (not the broker's). Names shown are the
-- defaults; the plugin's configuration can name others (README, Adapters).

-- What the agency's system publishes: one row per event, written in the
-- same transaction as the change it announces. The adapter fills sent_at
-- and broker_seq after the broker's CONFIRM, or error_code and
-- error_reason when the broker refuses the event; it never deletes rows.
CREATE TABLE IF NOT EXISTS maillage_outbox (
    seq          bigserial PRIMARY KEY,            -- publishing order
    id           uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(), -- the message id
    type         text NOT NULL,                    -- referral.created ...
    version      integer NOT NULL DEFAULT 1,       -- schema version of body
    recipients   text[],                           -- agency ids (PUBLISH `to`)
    subject      text,                             -- the person's pseudonym, if personal
    purpose      text,                             -- for consent-checked events
    correlation  text,                             -- ties events of one case
    occurred_at  timestamptz,                      -- when it happened here
    body         jsonb NOT NULL,                   -- the event, per its schema
    created_at   timestamptz NOT NULL DEFAULT now(),
    sent_at      timestamptz,                      -- set after CONFIRM
    broker_seq   bigint,                           -- the broker's seq
    error_code   text,                             -- set on REJECT (PROTOCOL.md §5)
    error_reason text
);
-- the rows still to publish, for the adapter's poll
CREATE INDEX IF NOT EXISTS maillage_outbox_unsent
    ON maillage_outbox (seq) WHERE sent_at IS NULL AND error_code IS NULL;

-- What the agency receives: one row per delivered event; the adapter acks
-- the delivery only after the row is committed, and a redelivery inserts
-- nothing (the primary key).
CREATE TABLE IF NOT EXISTS maillage_inbox (
    id           uuid PRIMARY KEY,                 -- the message id
    type         text NOT NULL,
    version      integer NOT NULL,
    sender       text NOT NULL,                    -- the publishing agency
    subject      text,
    purpose      text,
    correlation  text,
    occurred_at  timestamptz,
    received_at  timestamptz NOT NULL,             -- when the broker stored it
    body         jsonb NOT NULL,
    inserted_at  timestamptz NOT NULL DEFAULT now()
);
