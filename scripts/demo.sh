#!/usr/bin/env bash
# demo.sh - a whole referral pathway on this machine, without Docker.
#
#   bash scripts/demo.sh             plays the pathway, then runs until Ctrl-C
#   bash scripts/demo.sh --no-wait   plays it and stops (for tests and CI)
#
# Builds maillage, starts a private PostgreSQL in .demo/pg (inside the
# checkout), the broker, and two adapters:
#   - the CCAS (ccas-paris-13) through the `sql` adapter: its legacy
#     database `ccas_legacy` (in the same private server) with an outbox fed
#     by a trigger on its own table of orientations, and an inbox;
#   - the care home (ehpad-les-tilleuls) through the `files` adapter: a drop
#     folder, .demo/drop-ehpad/{in,out,done,failed}.
# Then it plays: a consent granted, a referral created by the CCAS to the
# care home, accepted, a situation shared, a share refused for lack of
# consent, the consent revoked (and a share refused after it). A second
# act follows a referral to two care homes at once (PROTOCOL.md §9): one
# reads it and puts it on its waiting list, the other lets it run past
# its deadline (8 s in the demo) and the broker tells both parties; the
# first accepts and the person moves in, so the broker closes the other
# care home's leg as superseded; the département then refers the same
# person and is told of the CCAS's open referral, because a consent
# covers them both. It ends with `maillage referrals stats`. Each step is
# printed as it happens, with where to look. Everything is stopped on exit;
# the data stays in .demo/ (remove it with: rm -rf .demo, after stopping).
#
# Environment (for tests): MAILLAGE_DEMO_DIR (state folder, default
# .demo), MAILLAGE_DEMO_ENDPOINT (default tcp://127.0.0.1:5670),
# MAILLAGE_DEMO_HTTP (the broker's HTTP address, default 127.0.0.1:9670),
# MAILLAGE_DEMO_BUILD (a build folder to use as it is: no apt-get, no build).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

wait_at_end=1
for arg in "$@"; do
  case "$arg" in
    --no-wait) wait_at_end=0 ;;
    -h | --help) sed -n '2,32p' "$0"; exit 0 ;;
    *) echo "demo.sh: unknown argument $arg (see --help)" >&2; exit 2 ;;
  esac
done

state=${MAILLAGE_DEMO_DIR:-$root/.demo}
endpoint=${MAILLAGE_DEMO_ENDPOINT:-tcp://127.0.0.1:5670}
http=${MAILLAGE_DEMO_HTTP:-127.0.0.1:9670}
build=${MAILLAGE_DEMO_BUILD:-}
mkdir -p "$state"
state=$(cd "$state" && pwd)

if [ -z "$build" ]; then
  bash scripts/deps.sh
  echo "== building"
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >build.configure.log 2>&1 \
    || { cat build.configure.log; exit 1; }
  cmake --build build -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
  build=$root/build
fi
broker_bin=$build/broker/maillage-broker
adapter_bin=$build/adapters/maillage-adapter
cli=$build/tools/maillage

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say() { printf '   %s\n' "$*"; }

pgdir="$state/pg"
step "a private PostgreSQL in $pgdir"
bash scripts/pg.sh start "$pgdir" maillage >/dev/null
# shellcheck disable=SC1091
source "$pgdir/env"
legacy_url="postgresql://$MLG_PGUSER@127.0.0.1:$MLG_PGPORT/ccas_legacy"
# a fresh pathway each run: both databases made anew
admin_url="postgresql://$MLG_PGUSER@127.0.0.1:$MLG_PGPORT/postgres"
for db in maillage ccas_legacy; do
  psql -q "$admin_url" -c "drop database if exists $db with (force)" -c "create database $db"
done
say "the broker's database: $MLG_DATABASE_URL"
say "the CCAS's legacy database: $legacy_url"

pids=()
cleanup() {
  if [ ${#pids[@]} -gt 0 ]; then
    echo
    echo "== stopping the adapters and the broker (SIGTERM), then PostgreSQL"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  bash scripts/pg.sh stop "$pgdir" >/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# the broker's configuration: the example's agencies, this run's addresses
sed -e "s|^\(    schemas = \).*|\1$root/schemas|" \
  -e "s|^\(    endpoint = \).*|\1$endpoint|" \
  -e "s|^\(    database = \).*|\1$MLG_DATABASE_URL|" \
  -e "/^    http = /d" \
  -e "s|^broker\$|broker\n    http = $http|" \
  -e "s|^\(            urgent = \)2d\$|\18s  # the demo's; 2d in the example|" \
  examples/maillage.cfg >"$state/maillage.cfg"

step "maillage-broker on $endpoint (log: $state/broker.log)"
: >"$state/broker.log"
"$broker_bin" --config "$state/maillage.cfg" 2>>"$state/broker.log" &
pids+=($!)
for _ in $(seq 1 150); do
  grep -q "database available" "$state/broker.log" && break
  kill -0 "${pids[0]}" 2>/dev/null || { cat "$state/broker.log"; exit 1; }
  sleep 0.1
done
grep -q "database available" "$state/broker.log" || { cat "$state/broker.log"; exit 1; }

step "the CCAS's legacy system: its own table of orientations, and the adapter's outbox and inbox"
psql -q "$legacy_url" -f adapters/sql/tables.sql
psql -q "$legacy_url" <<'SQL'
CREATE TABLE orientations (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(), pseudonym text NOT NULL,
  care_home text NOT NULL, service text NOT NULL, reason text NOT NULL,
  social_worker text NOT NULL, family_name text, given_name text, birth_date date);
-- each new orientation is published, in the same transaction
CREATE FUNCTION orientations_to_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO maillage_outbox (type, version, recipients, subject, purpose, correlation, body)
  VALUES ('referral.created', 1, ARRAY[NEW.care_home], NEW.pseudonym, 'orientation', NEW.id,
          jsonb_build_object(
            'referral_id', NEW.id, 'service', NEW.service, 'reason', NEW.reason,
            'priority', 'routine',
            'requested_by', jsonb_build_object('name', NEW.social_worker,
                                               'role', 'assistante sociale'),
            'person', jsonb_build_object('family_name', NEW.family_name,
                                         'given_name', NEW.given_name,
                                         'birth_date', NEW.birth_date)));
  RETURN NEW;
END $$;
CREATE TRIGGER orientations_outbox AFTER INSERT ON orientations
  FOR EACH ROW EXECUTE FUNCTION orientations_to_outbox();
SQL
say "tables: orientations (the CCAS's own), maillage_outbox, maillage_inbox"

drop="$state/drop-ehpad"
rm -rf "$drop"
cat >"$state/adapter-sql.cfg" <<EOF
adapter
    agency = ccas-paris-13
    endpoint = $endpoint
    client = "sql@ccas-paris-13"
    poll_ms = 100
plugin
    database = "$legacy_url"
    outbox
        table = maillage_outbox
    inbox
        table = maillage_inbox
EOF
cat >"$state/adapter-files.cfg" <<EOF
adapter
    agency = ehpad-les-tilleuls
    endpoint = $endpoint
    client = "files@ehpad-les-tilleuls"
    poll_ms = 100
plugin
    dir = $drop
EOF
step "adapters: sql for the CCAS, files for the care home (logs: $state/adapter-*.log)"
"$adapter_bin" --plugin sql --config "$state/adapter-sql.cfg" 2>"$state/adapter-sql.log" &
pids+=($!)
"$adapter_bin" --plugin files --config "$state/adapter-files.cfg" 2>"$state/adapter-files.log" &
pids+=($!)
for _ in $(seq 1 100); do
  [ -d "$drop/in" ] && grep -q joined "$state/adapter-sql.log" \
    && grep -q joined "$state/adapter-files.log" && break
  sleep 0.1
done
say "the care home's drop folder: $drop"

# helpers: wait for a condition, print what happened
legacy() { psql -qAt "$legacy_url" -c "$1"; }
broker() { psql -qAt "$MLG_DATABASE_URL" -c "$1"; }
wait_for() { # wait_for SECONDS COMMAND...: until COMMAND succeeds
  local limit=$(($1 * 10)); shift
  for _ in $(seq 1 "$limit"); do "$@" && return 0; sleep 0.1; done
  echo "demo.sh: timed out waiting for: $*" >&2
  return 1
}
out_file() { [ -s "$drop/out/$1.json" ]; }
row_settled() { [ -n "$(legacy "select 1 from maillage_outbox where id = '$1' and (sent_at is not null or error_code is not null)")" ]; }
decisions() { # decisions MESSAGE_ID: recipient decision basis reason
  broker "select string_agg(recipient || ': ' || decision || ' (' || basis || coalesce(', ' || reason, '') || ')', '; ' order by id)
          from consent_decisions where message_id = '$1'"
}
publish() { # publish TYPE TO SUBJECT PURPOSE CORRELATION BODY: the new row's id
  legacy "insert into maillage_outbox (type, version, recipients, subject, purpose, correlation, body)
          values ('$1', 1, $2, '$3', $4, $5, '$6') returning id"
}

subject=pseudo-7f3a9c
consent_id=5e4d3c2b-1a09-4f8e-9d7c-6b5a4f3e2d1c

step "1. the CCAS records the person's consent (sharing between the CCAS and the care home)"
id=$(publish consent.granted NULL "$subject" NULL NULL "{
  \"consent_id\": \"$consent_id\", \"parties\": [\"ccas-paris-13\", \"ehpad-les-tilleuls\"],
  \"purposes\": [\"orientation\", \"coordination\"], \"categories\": [\"social\", \"health\"],
  \"valid_from\": \"2026-01-01T00:00:00Z\", \"valid_until\": \"2036-01-01T00:00:00Z\",
  \"collected_by\": {\"name\": \"Élise Martin\", \"role\": \"assistante sociale\"},
  \"method\": \"written\", \"evidence_ref\": \"CCAS13/2026/0042\"}")
wait_for 20 row_settled "$id"
wait_for 20 out_file "$id"
say "outbox row $id published; the care home was notified: $drop/out/$id.json"

step "2. a social worker of the CCAS orients Mme Dupont to the care home (one insert in the legacy table)"
referral=$(legacy "insert into orientations (pseudonym, care_home, service, reason, social_worker,
                   family_name, given_name, birth_date)
                   values ('$subject', 'ehpad-les-tilleuls', 'nursing-home',
                   'Perte d''autonomie après une chute', 'Élise Martin', 'Dupont', 'Hélène',
                   '1940-02-29') returning id")
rid=$(legacy "select id from maillage_outbox where correlation = '$referral'")
wait_for 20 row_settled "$rid"
wait_for 20 out_file "$rid"
say "referral.created $rid: $(decisions "$rid")"
say "the care home received it as a file: $drop/out/$rid.json"

step "3. the care home accepts: its system drops a file in $drop/in/"
accept=$(cat /proc/sys/kernel/random/uuid)
cat >"$drop/in/.accept.json.tmp" <<EOF
{"id": "$accept", "type": "referral.accepted", "version": 1, "to": ["ccas-paris-13"],
 "subject": "$subject", "purpose": "orientation", "correlation": "$referral",
 "body": {"referral_id": "$referral", "accepted_by": {"name": "Dr Moreau", "role": "médecin coordonnateur"},
          "start_date": "2026-12-01"}}
EOF
mv "$drop/in/.accept.json.tmp" "$drop/in/accept.json"
in_inbox() { [ -n "$(legacy "select 1 from maillage_inbox where id = '$1'")" ]; }
wait_for 20 in_inbox "$accept"
say "referral.accepted $accept: $(decisions "$accept")"
say "moved to $drop/done/accept.json; in the CCAS's inbox: $(legacy "select type || ' from ' || sender from maillage_inbox where id = '$accept'")"

step "4. the CCAS shares the household's situation with the care home (purpose: coordination)"
share=$(publish situation.shared "array['ehpad-les-tilleuls']" "$subject" "'coordination'" "'$referral'" \
  '{"household": {"adults": 1, "children": 0}, "housing": "stable", "summary": "Vit seule, aide à domicile 2 h par jour."}')
wait_for 20 out_file "$share"
say "situation.shared $share: $(decisions "$share")"

step "5. the same share to the département: no consent covers it"
refused=$(publish situation.shared "array['cd75']" "$subject" "'coordination'" "'$referral'" \
  '{"household": {"adults": 1, "children": 0}, "housing": "stable"}')
wait_for 20 row_settled "$refused"
say "situation.shared $refused: $(decisions "$refused")"
say "stored for the audit, delivered to no one"

step "6. the person withdraws consent: the CCAS records it"
revoke=$(publish consent.revoked NULL "$subject" NULL NULL \
  "{\"consent_id\": \"$consent_id\", \"reason\": \"Retrait du consentement par la personne\"}")
wait_for 20 out_file "$revoke"
say "consent.revoked $revoke: the care home was notified ($drop/out/$revoke.json)"
after=$(publish situation.shared "array['ehpad-les-tilleuls']" "$subject" "'coordination'" "'$referral'" \
  '{"household": {"adults": 1, "children": 0}, "housing": "stable"}')
wait_for 20 row_settled "$after"
say "a share after the withdrawal, $after: $(decisions "$after")"

step "7. a new consent: the CCAS, both care homes and the département may share about this person's orientation"
consent2=9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d
id=$(publish consent.granted NULL "$subject" NULL NULL "{
  \"consent_id\": \"$consent2\", \"parties\": [\"ccas-paris-13\", \"ehpad-les-tilleuls\", \"ehpad-les-glycines\", \"cd75\"],
  \"purposes\": [\"orientation\"], \"categories\": [\"social\"],
  \"valid_from\": \"2026-01-01T00:00:00Z\",
  \"collected_by\": {\"name\": \"Élise Martin\", \"role\": \"assistante sociale\"},
  \"method\": \"written\"}")
wait_for 20 row_settled "$id"
say "consent.granted $id: $(decisions "$id")"

step "8. the CCAS refers Mme Dupont to two care homes at once (urgent: 8 s to decide in this demo)"
referral2=$(cat /proc/sys/kernel/random/uuid)
both=$(publish referral.created "array['ehpad-les-tilleuls', 'ehpad-les-glycines']" "$subject" "'orientation'" "'$referral2'" \
  "{\"referral_id\": \"$referral2\", \"service\": \"nursing-home\", \"priority\": \"urgent\",
    \"reason\": \"Retour à domicile impossible après hospitalisation\",
    \"requested_by\": {\"name\": \"Élise Martin\", \"role\": \"assistante sociale\"}}")
wait_for 20 row_settled "$both"
wait_for 20 out_file "$both"
say "referral.created $both: $(decisions "$both")"
leg_state() { [ "$(broker "select state from referral_legs where referral_id = '$referral2' and recipient = '$1'")" = "$2" ]; }
say "its legs: $(broker "select string_agg(recipient || ' ' || state || ', due ' || to_char(due_at, 'HH24:MI:SS'), '; ' order by recipient) from referral_legs where referral_id = '$referral2'")"

drop_event() { # drop_event NAME TYPE BODY: the care home's system drops a file
  local id
  id=$(cat /proc/sys/kernel/random/uuid)
  printf '{"id": "%s", "type": "%s", "version": 1, "to": ["ccas-paris-13"], "subject": "%s",\n "purpose": "orientation", "correlation": "%s", "body": %s}\n' \
    "$id" "$2" "$subject" "$referral2" "$3" >"$drop/in/.$1.json.tmp"
  mv "$drop/in/.$1.json.tmp" "$drop/in/$1.json"
}

step "9. Les Tilleuls reads it, then puts it on its waiting list (two files in $drop/in/)"
drop_event received referral.received "{\"referral_id\": \"$referral2\"}"
wait_for 20 leg_state ehpad-les-tilleuls received
drop_event waitlisted referral.waitlisted "{\"referral_id\": \"$referral2\", \"position\": 2}"
wait_for 20 leg_state ehpad-les-tilleuls waitlisted
say "the leg to Les Tilleuls: waitlisted, its first decision (its clock stops; 'received' does not stop it)"

step "10. Les Glycines says nothing: at the deadline the broker tells the CCAS and Les Glycines"
overdue() { [ -n "$(broker "select 1 from messages where type = 'referral.overdue' and correlation = '$referral2'")" ]; }
wait_for 30 overdue
od=$(broker "select id from messages where type = 'referral.overdue' and correlation = '$referral2'")
say "referral.overdue $od from maillage: $(decisions "$od")"
in_inbox_type() { [ -n "$(legacy "select 1 from maillage_inbox where type = '$1'")" ]; }
wait_for 20 in_inbox_type referral.overdue
say "in the CCAS's inbox: $(legacy "select type || ' from ' || sender from maillage_inbox where type = 'referral.overdue'")"

step "11. Les Tilleuls accepts, and Mme Dupont moves in: the broker closes the other leg"
drop_event accepted referral.accepted "{\"referral_id\": \"$referral2\"}"
wait_for 20 leg_state ehpad-les-tilleuls accepted
drop_event started referral.started "{\"referral_id\": \"$referral2\", \"start_date\": \"2026-12-07\"}"
wait_for 20 leg_state ehpad-les-glycines superseded
sup=$(broker "select id from messages where type = 'referral.superseded' and correlation = '$referral2'")
say "referral.superseded $sup from maillage: $(decisions "$sup")"
"$cli" --database "$MLG_DATABASE_URL" referral "$referral2" | sed 's/^/   /'

step "12. Les Glycines' system connects (maillage-send) and takes what waited for it"
"$build/tools/maillage-send" --endpoint "$endpoint" --as ehpad-les-glycines --receive 4 --timeout 3000 \
  | sed -e 's/: {.*$//' -e 's/^/   /'

step "13. the département refers the same person to Les Tilleuls: it is told of the CCAS's referral"
printf '{"id": "%s", "type": "referral.created", "version": 1, "to": ["ehpad-les-tilleuls"],\n "subject": "%s", "purpose": "orientation",\n "body": {"referral_id": "%s", "service": "nursing-home", "priority": "routine",\n  "reason": "Demande d'"'"'hébergement permanent",\n  "requested_by": {"name": "Paul Girard", "role": "travailleur social"}}}\n' \
  "$(cat /proc/sys/kernel/random/uuid)" "$subject" "$(cat /proc/sys/kernel/random/uuid)" >"$state/cd75-referral.json"
"$build/tools/maillage-send" --endpoint "$endpoint" --as cd75 "$state/cd75-referral.json" \
  | sed -e "s|$state/||" -e 's/^/   /'
say "(told because the consent of step 7 covers the département and the CCAS; without it the"
say " match would be stored for operators, and Les Tilleuls told, but not the département)"

step "maillage referrals stats: how long each service takes to answer"
"$cli" --database "$MLG_DATABASE_URL" referrals stats | sed 's/^/   /'

step "maillage status: the queues as the database and the broker see them"
"$cli" --database "$MLG_DATABASE_URL" --http "$http" status | sed 's/^/   /'

step "where to look"
say "$cli --database $MLG_DATABASE_URL --http $http status"
say "$cli --database $MLG_DATABASE_URL audit $rid"
say "$cli --database $MLG_DATABASE_URL subject-report $subject"
say "$cli --database $MLG_DATABASE_URL consents --subject $subject"
say "$cli --database $MLG_DATABASE_URL referral $referral2"
say "$cli --database $MLG_DATABASE_URL referrals --subject $subject"
say "the dashboard: http://$http/    metrics: http://$http/metrics"
say "psql $MLG_DATABASE_URL       (messages, deliveries, consent_decisions, consents)"
say "psql $legacy_url   (orientations, maillage_outbox, maillage_inbox)"
say "ls $drop/out $drop/done"

if [ "$wait_at_end" = 1 ]; then
  step "running; Ctrl-C stops everything"
  wait "${pids[0]}" || true
fi
