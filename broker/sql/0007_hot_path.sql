-- 0007_hot_path.sql: no foreign-key checks on the publish and ack path.
--
-- Each publish inserted a decision and a delivery that named their
-- message, and a consent-based decision its consent: PostgreSQL checked
-- each with a lookup that also locked the message's row (a WAL record
-- per check), 9-14 % of the database's CPU under load. The broker is the
-- only writer of these rows and writes a message, its decisions and its
-- deliveries in one transaction; `maillage verify` checks that every
-- reference holds (README.md "The audit chain", docs/operations.md "The
-- database").
-- The columns, their meaning and their indexes stay.
alter table deliveries drop constraint if exists deliveries_message_id_fkey;
alter table consent_decisions drop constraint if exists consent_decisions_message_id_fkey;
alter table consent_decisions drop constraint if exists consent_decisions_consent_id_fkey;
alter table delivery_events drop constraint if exists delivery_events_delivery_id_fkey;
