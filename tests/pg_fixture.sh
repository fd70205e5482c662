#!/usr/bin/env bash
# pg_fixture.sh - ctest fixture around scripts/pg.sh.
#
#   tests/pg_fixture.sh setup   STATEFILE
#       Start a private PostgreSQL server in a fresh /tmp/maillage-test-pg.XXXXXX
#       folder with database maillage_test, and write STATEFILE: the server's
#       env file (MLG_PGHOST, MLG_PGPORT, MLG_PGUSER, MLG_PGDATABASE,
#       MLG_DATABASE_URL, MLG_PGDATA) plus MLG_PGTMP=<that folder>.
#       If STATEFILE is left over from an earlier run that never cleaned up
#       (killed ctest), that earlier server and folder are destroyed first.
#
#   tests/pg_fixture.sh cleanup STATEFILE
#       Destroy the server and folder named by MLG_PGTMP in STATEFILE, then
#       remove STATEFILE.  Does nothing if STATEFILE is missing.
#
# Typical CMake use:
#   add_test(NAME pg_setup   COMMAND tests/pg_fixture.sh setup   ${STATE})
#   add_test(NAME pg_cleanup COMMAND tests/pg_fixture.sh cleanup ${STATE})
#   set_tests_properties(pg_setup   PROPERTIES FIXTURES_SETUP   pg)
#   set_tests_properties(pg_cleanup PROPERTIES FIXTURES_CLEANUP pg)
#   set_tests_properties(some_test  PROPERTIES FIXTURES_REQUIRED pg)

set -euo pipefail
shopt -s inherit_errexit

readonly PROG="tests/pg_fixture.sh"
readonly DBNAME="maillage_test"
readonly TMP_PREFIX="/tmp/maillage-test-pg."

die() {
    echo "$PROG: error: $*" >&2
    exit 1
}

usage() {
    echo "usage: $PROG setup|cleanup STATEFILE" >&2
    exit 2
}

# scripts/pg.sh, found relative to this script (works from any cwd).
PG_SH="$(cd "$(dirname "$0")/.." && pwd)/scripts/pg.sh"
[[ -x $PG_SH ]] || die "cannot find $PG_SH"

# MLG_PGTMP from a state file (read, never sourced).
state_tmpdir() {
    sed -n 's/^MLG_PGTMP=//p' "$1" | tail -n 1
}

# Destroy the folder recorded in STATEFILE (if any) and remove STATEFILE.
# Only folders that look like ours are touched, so a corrupted or foreign
# state file cannot make us delete something else.
destroy_from_state() {
    local state=$1 tmp
    [[ -f $state ]] || return 0
    tmp=$(state_tmpdir "$state")
    if [[ -n $tmp ]]; then
        if [[ $tmp == "$TMP_PREFIX"* && $tmp != *..* ]]; then
            "$PG_SH" destroy "$tmp"
        else
            echo "$PROG: ignoring unexpected MLG_PGTMP=$tmp in $state" >&2
        fi
    fi
    rm -f -- "$state"
}

cmd_setup() {
    local state=$1 tmp
    # A previous run killed before its cleanup left a server behind: stop it.
    destroy_from_state "$state"

    tmp=$(mktemp -d "${TMP_PREFIX}XXXXXX")
    if ! "$PG_SH" start "$tmp" "$DBNAME"; then
        "$PG_SH" destroy "$tmp" || true
        die "could not start the test database server"
    fi

    # Write the state file atomically next to its final place.
    mkdir -p -- "$(dirname -- "$state")"
    local part="$state.tmp.$$"
    { cat "$tmp/env" && echo "MLG_PGTMP=$tmp"; } >"$part"
    mv -f -- "$part" "$state"
}

cmd_cleanup() {
    destroy_from_state "$1"
}

[[ $# -eq 2 && -n $2 ]] || usage
case $1 in
setup) cmd_setup "$2" ;;
cleanup) cmd_cleanup "$2" ;;
*) usage ;;
esac
