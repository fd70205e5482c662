-- roles.sql: the database roles of maillage, with only the rights each
-- needs (README, "Database roles"). Run it as the owner of the database,
-- after the broker has applied its migrations once as that owner:
--   psql -v ON_ERROR_STOP=1 -d maillage -f examples/roles.sql
-- then give each role its password (ALTER ROLE ... PASSWORD) or a
-- certificate, and start the broker with the maillage_broker URL.
-- The owner role keeps DDL: use it for upgrades (new migrations) only.

-- The broker at run time: reads and writes rows, never drops, truncates or
-- deletes them (the agencies table excepted: it mirrors the configuration).
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'maillage_broker') THEN
    CREATE ROLE maillage_broker LOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'maillage_operator') THEN
    CREATE ROLE maillage_operator LOGIN;
  END IF;
END $$;

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM maillage_broker, maillage_operator;
GRANT USAGE ON SCHEMA public TO maillage_broker, maillage_operator;

GRANT SELECT, INSERT, UPDATE ON messages, deliveries, consent_decisions, consents,
    chain_head TO maillage_broker;
GRANT SELECT, INSERT ON delivery_events TO maillage_broker;
GRANT SELECT, UPDATE ON store_mark TO maillage_broker;
GRANT SELECT, INSERT, UPDATE, DELETE ON agencies TO maillage_broker;
GRANT SELECT ON schema_migrations TO maillage_broker;
GRANT SELECT ON queue_depth TO maillage_broker;
GRANT SELECT, INSERT, UPDATE ON referrals, referral_legs, referral_moves,
    referral_duplicates TO maillage_broker;
GRANT SELECT, DELETE ON referral_rebuild TO maillage_broker;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO maillage_broker;

-- Operators (the maillage CLI): read everything; `dlq replay` puts dead
-- deliveries back and records who did; `purge` clears message bodies.
-- Nothing else is written, and no row is deleted.
GRANT SELECT ON ALL TABLES IN SCHEMA public TO maillage_operator;
GRANT UPDATE (state, attempts, last_error, settled_at, updated_at) ON deliveries
    TO maillage_operator;
GRANT INSERT ON delivery_events TO maillage_operator;
GRANT UPDATE (body) ON messages TO maillage_operator;
GRANT USAGE ON SEQUENCE delivery_events_id_seq TO maillage_operator;
