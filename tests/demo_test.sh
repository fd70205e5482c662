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
  "consent.granted ehpad-les-tilleuls allow consent_notice; referral.created ehpad-les-tilleuls allow consent; referral.accepted ccas-paris-13 allow consent; situation.shared ehpad-les-tilleuls allow consent; situation.shared cd75 deny consent NO_CONSENT; consent.revoked ehpad-les-tilleuls allow consent_notice; situation.shared ehpad-les-tilleuls deny consent REVOKED"
expect "the consent" \
  "$(q "$MLG_DATABASE_URL" "select count(*) from consents where subject = 'pseudo-7f3a9c' and revoked_at is not null")" "1"
expect "every delivery settled" \
  "$(q "$MLG_DATABASE_URL" "select count(*) from deliveries where state not in ('acked')")" "0"
expect "deliveries acked" \
  "$(q "$MLG_DATABASE_URL" "select count(*) from deliveries where state = 'acked'")" "5"
expect "outbox rows sent, none refused" \
  "$(q "$legacy" "select count(*) filter (where sent_at is not null) || '/' || count(*) || '/' || count(error_code) from maillage_outbox")" \
  "6/6/0"
expect "the CCAS's inbox" \
  "$(q "$legacy" "select string_agg(type || ' from ' || sender, ', ') from maillage_inbox")" \
  "referral.accepted from ehpad-les-tilleuls"
expect "the care home's out/" "$(ls "$state/drop-ehpad/out" | wc -l)" "4"
expect "the care home's done/" "$(ls "$state/drop-ehpad/done")" "accept.json"
expect "the care home's failed/" "$(ls "$state/drop-ehpad/failed" | wc -l)" "0"
grep -q "where to look" "$state/demo.out" || { echo "demo_test: no 'where to look'" >&2; failures=$((failures + 1)); }

if [ "$failures" -ne 0 ]; then
  cat "$state/demo.out"
  exit 1
fi
echo "demo_test: the pathway's outcome is in the databases and the drop folder"
