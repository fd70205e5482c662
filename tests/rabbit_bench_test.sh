#!/usr/bin/env bash
# rabbit_bench_test.sh: rabbit-bench works (not how fast). On a private
# RabbitMQ node (scripts/rabbitmq.sh), 300 messages end to end on a quorum
# queue, then 300 publish-only, then 300 on a classic queue: each run must
# report every message published and confirmed, and (with a consumer)
# delivered and acked, with no error.
#
#   tests/rabbit_bench_test.sh RABBIT_BENCH SOURCE_DIR
#
# Exits 77 (ctest's SKIP_RETURN_CODE) when RabbitMQ or rabbit-bench is not
# there (no rabbitmq-server, or no librabbitmq-dev at configure time).
set -uo pipefail

bench=${1:-}
src=${2:-$(dirname "$0")/..}

if [[ -z $bench || ! -x $bench ]]; then
    echo "skipped: rabbit-bench is not built (librabbitmq-dev was not found)"
    exit 77
fi
if [[ ! -x ${MLG_RABBITMQ_SERVER:-/usr/lib/rabbitmq/bin/rabbitmq-server} ]]; then
    echo "skipped: rabbitmq-server is not installed"
    exit 77
fi

dir=$(mktemp -d /tmp/maillage-test-rabbit.XXXXXX)
trap 'bash "$src/scripts/rabbitmq.sh" destroy "$dir/node"; rm -rf "$dir"' EXIT

port=$(bash "$src/scripts/rabbitmq.sh" start "$dir/node") || {
    echo "FAIL: scripts/rabbitmq.sh could not start a node"
    exit 1
}
pid=$(sed -n 's/^MLG_RABBIT_PID=//p' "$dir/node/env")

# The value of a top-level count in rabbit-bench's JSON (two-space indent).
field() {
    sed -n "s/^  \"$1\": \([0-9]*\),\{0,1\}\$/\1/p" <<<"$2"
}

failures=0
# run NAME PUBLISHED CONFIRMED DELIVERED ACKED -- OPTIONS...
run() {
    local name=$1 want="$2 $3 $4 $5 0"
    shift 6
    local out rc=0
    out=$("$bench" --port "$port" --quiet --json "$@") || rc=$?
    echo "$out"
    local got
    got="$(field published "$out") $(field confirmed "$out") $(field delivered "$out")"
    got="$got $(field acked "$out") $(field errors "$out")"
    if [[ $rc -ne 0 || $got != "$want" ]]; then
        echo "FAIL: $name: exit $rc; published confirmed delivered acked errors: $got," \
            "expected $want"
        failures=$((failures + 1))
    else
        echo "ok: $name"
    fi
}

run "quorum, end to end" 300 300 300 300 -- --count 300 --window 50 --broker-pid "$pid"
run "quorum, publish only" 300 300 0 0 -- --count 300 --consumers 0
run "classic, end to end" 300 300 300 300 -- --count 300 --classic

# the text report has maillage-bench's lines
text=$("$bench" --port "$port" --quiet --count 300) || failures=$((failures + 1))
echo "$text"
if ! grep -q '300 published, 300 confirmed, 0 rejected, 300 delivered, 300 acked' <<<"$text" ||
    ! grep -q 'publish -> deliver' <<<"$text"; then
    echo "FAIL: the text report lacks its counts or its latency lines"
    failures=$((failures + 1))
fi

[[ $failures -eq 0 ]] || exit 1
echo "rabbit-bench: every run reported its counts"
