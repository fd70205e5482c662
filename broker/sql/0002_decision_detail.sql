-- 0002_decision_detail.sql: a sentence for people beside each decision's
-- reason code (consent_decisions.reason stays the §7 code): "the consent
-- is not yet valid" and "the consent has expired" share the code EXPIRED.
alter table consent_decisions add column detail text;
