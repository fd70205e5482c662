#!/usr/bin/env bash
# demo.sh - maillage on this machine, as far as it goes today:
#   builds it, starts a private PostgreSQL in .demo/pg (inside the
#   checkout) and maillage-broker on it (examples/maillage.cfg), checks
#   the example events as the broker will, then publishes some as the
#   agencies would and lets the recipients take their deliveries; last,
#   shows what the database kept. Everything is stopped on exit; the data
#   stays in .demo/ (remove it with: scripts/pg.sh destroy .demo/pg).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

bash scripts/deps.sh
echo "== building"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >build.configure.log 2>&1 \
  || { cat build.configure.log; exit 1; }
cmake --build build -j "$(nproc 2>/dev/null || echo 2)" >/dev/null

pgdir="$root/.demo/pg"
endpoint=tcp://127.0.0.1:5670
echo "== a private PostgreSQL in .demo/pg"
bash scripts/pg.sh start "$pgdir" maillage
# shellcheck disable=SC1091
source "$pgdir/env"

broker_pid=""
cleanup() {
  if [ -n "$broker_pid" ]; then
    echo "== stopping the broker (SIGTERM: it drains) and PostgreSQL"
    kill -TERM "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
  fi
  bash scripts/pg.sh stop "$pgdir"
}
trap cleanup EXIT

echo "== maillage-broker on $endpoint (log: .demo/broker.log)"
build/broker/maillage-broker --config examples/maillage.cfg \
  --endpoint "$endpoint" --database "$MLG_DATABASE_URL" 2>"$root/.demo/broker.log" &
broker_pid=$!
for _ in $(seq 1 100); do
  grep -q "database available" "$root/.demo/broker.log" 2>/dev/null && break
  if ! kill -0 "$broker_pid" 2>/dev/null; then
    cat "$root/.demo/broker.log"
    exit 1
  fi
  sleep 0.1
done
sed 's/^/   /' "$root/.demo/broker.log"

echo "== checking examples/events/ as published by ccas-paris-13 (maillage-check)"
build/tools/maillage-check --from ccas-paris-13 examples/events/*.json || true

echo "== publishing (maillage-send)"
echo "-- a referral before any consent: denied NO_CONSENT"
build/tools/maillage-send --endpoint "$endpoint" --as ccas-paris-13 \
  examples/events/7-referral-before-consent.json || true
echo "-- the person's consent (ccas-paris-13 and ehpad-les-tilleuls), then the referral"
build/tools/maillage-send --endpoint "$endpoint" --as ccas-paris-13 \
  examples/events/1-consent-granted.json examples/events/2-referral-created.json || true
echo "-- a child protection alert: a legal obligation, no consent needed"
build/tools/maillage-send --endpoint "$endpoint" --as ccas-paris-13 \
  examples/events/6-alert.json || true
echo "-- a care home announces free places: to its subscribers"
build/tools/maillage-send --endpoint "$endpoint" --as ehpad-les-tilleuls \
  examples/events/5-capacity.json || true

echo "== the recipients take their deliveries"
build/tools/maillage-send --endpoint "$endpoint" --as ehpad-les-tilleuls --receive 2 \
  --timeout 2000 || true
build/tools/maillage-send --endpoint "$endpoint" --as cd75 --receive 1 --timeout 2000 || true
build/tools/maillage-send --endpoint "$endpoint" --as ars-idf --receive 1 --timeout 2000 || true

echo "== what PostgreSQL kept (the tables operators and auditors read)"
psql "$MLG_DATABASE_URL" -P pager=off -c \
  "select seq, type, sender, subject, purpose, length(body) as body_bytes from messages order by seq"
psql "$MLG_DATABASE_URL" -P pager=off -c \
  "select m.seq, c.recipient, c.decision, c.basis, c.reason, c.consent_id from consent_decisions c
   join messages m on m.id = c.message_id order by m.seq, c.id"
psql "$MLG_DATABASE_URL" -P pager=off -c \
  "select d.id as delivery, m.seq, d.recipient, d.state, d.attempts from deliveries d
   join messages m on m.id = d.message_id order by d.id"
