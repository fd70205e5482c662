#!/usr/bin/env bash
# demo.sh - what maillage does so far, on this machine:
#   builds it, starts a private PostgreSQL in .demo/pg (inside the
#   checkout), creates the tables of broker/sql/, loads the event schemas,
#   and checks the example events of examples/events/ as the broker will:
#   envelope, schema, and the rules of each legal basis.
# The broker, which carries these events between agencies, is the next
# step; this demo grows with it. The server is stopped on exit, its data
# kept in .demo/pg (remove it with: scripts/pg.sh destroy .demo/pg).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
echo "== building"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >build.configure.log 2>&1 \
  || { cat build.configure.log; exit 1; }
cmake --build build -j "$(nproc 2>/dev/null || echo 2)" >/dev/null

pgdir="$PWD/.demo/pg"
echo "== a private PostgreSQL in .demo/pg"
bash scripts/pg.sh start "$pgdir" maillage
trap 'echo "== stopping PostgreSQL"; bash scripts/pg.sh stop "$pgdir"' EXIT
# shellcheck disable=SC1091
source "$pgdir/env"

echo "== the tables operators and auditors read (broker/sql/)"
if [ "$(psql "$MLG_DATABASE_URL" -Atc "select to_regclass('messages') is null")" = t ]; then
  psql "$MLG_DATABASE_URL" -q -1 -v ON_ERROR_STOP=1 -f broker/sql/0001_init.sql
fi
psql "$MLG_DATABASE_URL" -c '\dt'

echo "== the event catalogue (schemas/)"
ls schemas | sed 's/^/   /'

echo "== checking examples/events/ as published by ccas-paris-13"
build/tools/maillage-check --from ccas-paris-13 examples/events/*.json || true
echo
echo "Two of the five examples are refused, each with its PROTOCOL.md code and"
echo "the member at fault. Check your own events with:"
echo "   build/tools/maillage-check --from YOUR-AGENCY event.json"
