#!/usr/bin/env bash
# demo_test.sh BUILD_DIR - runs the README's demo non-interactively
# (scripts/demo.sh --no-wait) with the binaries of BUILD_DIR, in a
# temporary folder on free ports, then starts its PostgreSQL again and
# checks the pathway's outcome in the broker's database, the CCAS's
# legacy database and the care home's drop folder.
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
state=$(mktemp -d /tmp/maillage-demo-test-XXXXXX)
chmod 755 "$state" # the postgres user runs the server when this runs as root
trap 'bash "$src/scripts/pg.sh" destroy "$state/pg" >/dev/null 2>&1 || true; rm -rf "$state"' EXIT

free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((28000 + RANDOM % 4000)) # below the ephemeral range; brokerproc uses 21000-27999
    if ! (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  return 1
}

MAILLAGE_DEMO_DIR=$state MAILLAGE_DEMO_BUILD=$build \
  MAILLAGE_DEMO_ENDPOINT=tcp://127.0.0.1:$(free_port) MAILLAGE_DEMO_HTTP=127.0.0.1:$(free_port) \
  bash "$src/scripts/demo.sh" --no-wait >"$state/demo.out" 2>&1 \
  || { cat "$state/demo.out"; tail -30 "$state"/*.log; exit 1; }

bash "$src/scripts/pg.sh" start "$state/pg" >/dev/null
# shellcheck disable=SC1091
source "$state/pg/env"
legacy="postgresql://$MLG_PGUSER@127.0.0.1:$MLG_PGPORT/ccas_legacy"
q() { psql -qAt "$1" -c "$2"; }
failures=0
expect() { # expect WHAT GOT WANT
  if [ "$2" != "$3" ]; then
    echo "demo_test: $1: got '$2', want '$3'" >&2
    failures=$((failures + 1))
  fi
}

expect "decisions, in order" \
  "$(q "$MLG_DATABASE_URL" "select string_agg(m.type || ' ' || d.recipient || ' ' || d.decision || ' ' || d.basis || coalesce(' ' || d.reason, ''), '; ' order by m.seq, d.id)
      from consent_decisions d join messages m on m.id = d.message_id")" \
  "consent.granted ehpad-les-tilleuls allow consent_notice; referral.created ehpad-les-tilleuls allow consent; referral.accepted ccas-paris-13 allow consent; situation.shared ehpad-les-tilleuls allow consent; situation.shared cd75 deny consent NO_CONSENT; consent.revoked ehpad-les-tilleuls allow consent_notice; situation.shared ehpad-les-tilleuls deny consent REVOKED; consent.granted ehpad-les-tilleuls allow consent_notice; consent.granted ehpad-les-glycines allow consent_notice; consent.granted cd75 allow consent_notice; referral.created ehpad-les-tilleuls allow consent; referral.created ehpad-les-glycines allow consent; referral.received ccas-paris-13 allow consent; referral.waitlisted ccas-paris-13 allow consent; referral.overdue ccas-paris-13 allow service_notice; referral.overdue ehpad-les-glycines allow service_notice; referral.accepted ccas-paris-13 allow consent; referral.started ccas-paris-13 allow consent; referral.superseded ccas-paris-13 allow service_notice; referral.superseded ehpad-les-glycines allow service_notice; referral.created ehpad-les-tilleuls allow consent"
expect "the consent" \
  "$(q "$MLG_DATABASE_URL" "select count(*) from consents where subject = 'pseudo-7f3a9c' and revoked_at is not null")" "1"
expect "every delivery settled but the département's (it never connects)" \
  "$(q "$MLG_DATABASE_URL" "select string_agg(d.recipient || ' ' || m.type, ', ') from deliveries d join messages m on m.id = d.message_id where d.state not in ('acked')")" \
  "cd75 consent.granted"
expect "deliveries acked" \
  "$(q "$MLG_DATABASE_URL" "select count(*) from deliveries where state = 'acked'")" "18"
expect "outbox rows sent, none refused" \
  "$(q "$legacy" "select count(*) filter (where sent_at is not null) || '/' || count(*) || '/' || count(error_code) from maillage_outbox")" \
  "8/8/0"
expect "the CCAS's inbox" \
  "$(q "$legacy" "select string_agg(type || ' from ' || sender, ', ' order by received_at, id) from maillage_inbox")" \
  "referral.accepted from ehpad-les-tilleuls, referral.received from ehpad-les-tilleuls, referral.waitlisted from ehpad-les-tilleuls, referral.overdue from maillage, referral.accepted from ehpad-les-tilleuls, referral.started from ehpad-les-tilleuls, referral.superseded from maillage"
expect "the care home's out/" "$(ls "$state/drop-ehpad/out" | wc -l)" "7"
expect "the care home's done/" "$(ls "$state/drop-ehpad/done" | tr '\n' ' ')" \
  "accept.json accepted.json received.json started.json waitlisted.json "
expect "the legs of the two-care-home referral" \
  "$(q "$MLG_DATABASE_URL" "select string_agg(l.recipient || ' ' || l.state || ' ' || (l.overdue_notified_at is not null), ', ' order by l.recipient) from referral_legs l join referrals r using (referral_id) where r.priority = 'urgent'")" \
  "ehpad-les-glycines superseded true, ehpad-les-tilleuls started false"
expect "the département told of the CCAS's open legs" \
  "$(q "$MLG_DATABASE_URL" "select count(*) filter (where told_publisher) || '/' || count(*) from referral_duplicates d join referrals r on r.referral_id = d.referral_id where r.referrer = 'cd75'")" \
  "2/2"
grep -q "nursing-home" "$state/demo.out" || { echo "demo_test: no referrals stats" >&2; failures=$((failures + 1)); }
expect "the care home's failed/" "$(ls "$state/drop-ehpad/failed" | wc -l)" "0"
grep -q "where to look" "$state/demo.out" || { echo "demo_test: no 'where to look'" >&2; failures=$((failures + 1)); }

if [ "$failures" -ne 0 ]; then
  cat "$state/demo.out"
  exit 1
fi
echo "demo_test: the pathway's outcome is in the databases and the drop folder"
