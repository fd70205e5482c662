#!/usr/bin/env bash
# pg.sh - manage a private, throw-away PostgreSQL server living in one folder.
#
# Usage:
#   scripts/pg.sh start   DIR [DBNAME]   start (or reuse) a server, create DBNAME
#   scripts/pg.sh stop    DIR            stop the server (no-op if none runs)
#   scripts/pg.sh destroy DIR            stop the server and delete DIR
#
# Layout of DIR (everything the script creates lives here):
#   DIR/data          the cluster (initdb -U maillage --auth=trust)
#   DIR/sock          unix socket directory (-k)
#   DIR/postgres.log  server log (pg_ctl -l)
#   DIR/initdb.log    output of the last initdb
#   DIR/env           KEY=VALUE file, sourceable by sh and trivially parseable
#                     from C (no quotes, no spaces):
#                       MLG_PGHOST MLG_PGPORT MLG_PGUSER MLG_PGDATABASE
#                       MLG_DATABASE_URL MLG_PGDATA
#   DIR/.pg.lock      flock(1) lock serialising concurrent pg.sh runs on DIR
#
# The server only listens on 127.0.0.1 (random free port in 20000-32000) and
# on DIR/sock, with trust authentication: it is meant for tests and local
# development, never for real data.
#
# initdb, pg_ctl and postgres refuse to run as root.  When this script runs as
# root it therefore runs them as the "postgres" system user (created by the
# Debian/Ubuntu postgresql package) through runuser(1), and hands DIR over to
# that user.  As an ordinary user everything runs as that user.
#
# Environment:
#   MLG_PG_BINDIR   force the folder holding initdb/pg_ctl/postgres

set -euo pipefail
# Make `set -e` apply inside $(...) too, so helpers that die() in a command
# substitution abort the whole script.
shopt -s inherit_errexit

readonly PROG="scripts/pg.sh"
readonly PGUSER_NAME="maillage"      # database superuser created by initdb
readonly ROOT_SERVER_USER="postgres" # system user running the server as root
readonly START_ATTEMPTS=5

# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------

die() {
    echo "$PROG: error: $*" >&2
    exit 1
}

warn() {
    echo "$PROG: $*" >&2
}

usage() {
    cat >&2 <<EOF
usage: $PROG start   DIR [DBNAME]   start (or reuse) a private server in DIR
                                       and create DBNAME (default: maillage)
       $PROG stop    DIR            stop the server running on DIR/data
       $PROG destroy DIR            stop the server and remove DIR
EOF
    exit 2
}

# Turn a possibly relative, possibly not-yet-existing path into an absolute
# one (without requiring GNU realpath -m).
abspath() {
    local p=$1
    if [[ -d $p ]]; then
        (cd -- "$p" && pwd -P)
        return
    fi
    [[ $p == /* ]] || p="$PWD/$p"
    local parent base
    parent=$(dirname -- "$p")
    base=$(basename -- "$p")
    if [[ -d $parent ]]; then
        parent=$(cd -- "$parent" && pwd -P)
    fi
    # Avoid "//name" when the parent is "/".
    printf '%s/%s\n' "${parent%/}" "$base"
}

# Locate the server binaries (the folder holding initdb, pg_ctl, postgres).
# Preference: $MLG_PG_BINDIR, the newest /usr/lib/postgresql/*/bin (Debian
# layout), then `pg_config --bindir` if it holds initdb.
find_bindir() {
    if [[ -n ${MLG_PG_BINDIR:-} ]]; then
        [[ -x $MLG_PG_BINDIR/initdb ]] ||
            die "MLG_PG_BINDIR=$MLG_PG_BINDIR has no initdb"
        echo "$MLG_PG_BINDIR"
        return
    fi
    local d newest=""
    # sort -V orders "9.6" < "10" < "15" correctly.
    while IFS= read -r d; do
        [[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]] && newest=$d
    done < <(compgen -G '/usr/lib/postgresql/*/bin' | sort -V || true)
    if [[ -n $newest ]]; then
        echo "$newest"
        return
    fi
    if command -v pg_config >/dev/null 2>&1; then
        d=$(pg_config --bindir 2>/dev/null || true)
        if [[ -n $d && -x $d/initdb && -x $d/pg_ctl ]]; then
            echo "$d"
            return
        fi
    fi
    die "postgresql server not installed: run scripts/deps.sh"
}

# Major version of the server binaries ("15", or "9.6" for old releases), to
# compare with DIR/data/PG_VERSION.
server_major() {
    local v
    v=$("$BINDIR/postgres" -V | awk '{print $3}') # "15.20"
    if [[ ${v%%.*} -ge 10 ]]; then
        echo "${v%%.*}"
    else
        echo "$v" | cut -d. -f1-2
    fi
}

# Run a server-side program as the user who owns the server.  The `cd /`
# avoids "could not change directory" warnings when the current folder (for
# example /root) is not readable by the postgres user.  Closing fd 9 (the
# DIR/.pg.lock lock, see lock_dir) matters: otherwise the postmaster started
# by pg_ctl inherits it and holds the lock for its whole life, and every
# later pg.sh run on DIR (stop, destroy, start) blocks forever in flock.
as_server() {
    if [[ $IS_ROOT -eq 1 ]]; then
        (cd / && exec 9>&- && runuser -u "$ROOT_SERVER_USER" -- "$@")
    else
        (cd / && exec 9>&- && "$@")
    fi
}

# Set up IS_ROOT and check that, as root, the server user exists.
init_identity() {
    if [[ $(id -u) -eq 0 ]]; then
        IS_ROOT=1
        command -v runuser >/dev/null 2>&1 ||
            die "running as root needs runuser(1) (util-linux) to drop to '$ROOT_SERVER_USER'"
        id -u "$ROOT_SERVER_USER" >/dev/null 2>&1 ||
            die "running as root, but there is no '$ROOT_SERVER_USER' system user to run the server (install the postgresql package: scripts/deps.sh, or run as an ordinary user)"
    else
        IS_ROOT=0
    fi
}

# Serialise pg.sh invocations on the same DIR (two concurrent "start"s would
# otherwise race on initdb / port choice / CREATE DATABASE).  The lock is
# held on fd 9 until this script exits; child processes that may outlive it
# must not inherit fd 9 (see as_server).
lock_dir() {
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$DIR/.pg.lock"
        flock -w 300 9 ||
            die "another $PROG run holds $DIR/.pg.lock (waited 5 minutes)"
    fi
}

# True if a server is running on DIR/data (pg_ctl status exits 0).
server_running() {
    [[ -f $DATA/PG_VERSION ]] || return 1
    as_server "$BINDIR/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

# Read KEY from a KEY=VALUE file without sourcing it.
read_kv() {
    local file=$1 key=$2
    [[ -f $file ]] || return 0
    sed -n "s/^$key=//p" "$file" | tail -n 1
}

# ---------------------------------------------------------------------------
# Ports
# ---------------------------------------------------------------------------

# random_port, port_free, pick_port (20000-32000, below the ephemeral range)
# shellcheck source=scripts/ports.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/ports.sh"

# ---------------------------------------------------------------------------
# start
# ---------------------------------------------------------------------------

# Create DIR (and DIR/sock), hand them to the server user when root, and
# check that user can actually reach DIR.
prepare_dir() {
    mkdir -p -- "$DIR" "$SOCK"
    if [[ $IS_ROOT -eq 1 ]]; then
        chown "$ROOT_SERVER_USER:" "$DIR" "$SOCK"
        if ! runuser -u "$ROOT_SERVER_USER" -- test -x "$DIR" ||
            ! runuser -u "$ROOT_SERVER_USER" -- test -w "$DIR"; then
            die "the '$ROOT_SERVER_USER' user (which runs the server when $PROG runs as root) cannot reach $DIR: a parent folder is not searchable by it (e.g. under /root); use a folder such as /tmp/maillage-pg instead"
        fi
    fi
}

# initdb DIR/data unless it already holds a cluster.
ensure_cluster() {
    if [[ -f $DATA/PG_VERSION ]]; then
        local have want
        have=$(cat "$DATA/PG_VERSION")
        want=$(server_major)
        [[ $have == "$want" ]] ||
            die "$DATA was created by PostgreSQL $have but the server binaries in $BINDIR are $want; run '$PROG destroy $DIR' first"
        return
    fi
    # The log is written by this shell (not the server user), via redirection.
    local log="$DIR/initdb.log"
    : >"$log"
    local common=(-D "$DATA" -U "$PGUSER_NAME" --auth=trust -E UTF8)
    if ! as_server "$BINDIR/initdb" "${common[@]}" --locale=C.UTF-8 >>"$log" 2>&1; then
        # Some systems lack the C.UTF-8 locale: fall back to plain C.
        # initdb removes what it created on failure; make sure anyway.
        warn "initdb --locale=C.UTF-8 failed, retrying with --no-locale"
        rm -rf -- "$DATA"
        if ! as_server "$BINDIR/initdb" "${common[@]}" --no-locale >>"$log" 2>&1; then
            tail -n 30 "$log" >&2
            die "initdb failed (full output in $log)"
        fi
    fi
}

# Start the server on its previous port if that is free, else on a free
# one, retrying when the port got taken between the check and the bind.
# Prints the port.
start_server() {
    local attempt port before
    for ((attempt = 1; attempt <= START_ATTEMPTS; attempt++)); do
        # A restarted server keeps its port when it can, so that clients
        # (a running broker, the demo's URL) find it again.
        port=""
        if ((attempt == 1)) && [[ -r $ENVFILE ]]; then
            port=$(read_kv "$ENVFILE" MLG_PGPORT || true)
        fi
        if ! [[ $port =~ ^[0-9]+$ ]] || ! port_free "$port"; then
            port=$(pick_port)
        fi
        before=0
        [[ -f $LOG ]] && before=$(wc -c <"$LOG")
        if as_server "$BINDIR/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $SOCK -c fsync=on" \
            start >/dev/null 2>&1; then
            echo "$port"
            return
        fi
        # pg_ctl may have given up waiting while the postmaster still runs
        # (timeout): never leave a half-started server behind.
        as_server "$BINDIR/pg_ctl" -D "$DATA" -m immediate -w stop >/dev/null 2>&1 || true
        # Only a port clash is worth another try.
        if [[ -f $LOG ]] && tail -c +"$((before + 1))" "$LOG" |
            grep -qE 'could not bind|Address already in use|could not create any TCP/IP sockets'; then
            if ((attempt < START_ATTEMPTS)); then
                warn "port $port was taken meanwhile, retrying with another one"
            fi
            continue
        fi
        break
    done
    if [[ -f $LOG ]]; then
        echo "---- last lines of $LOG ----" >&2
        tail -n 30 "$LOG" >&2
        echo "----" >&2
    fi
    die "could not start the postgresql server on $DATA"
}

cmd_start() {
    local dbname=$1
    # Values in DIR/env must not contain spaces or quotes (C parsers read them
    # verbatim), and the URL must not need escaping.
    [[ $DIR =~ ^[A-Za-z0-9_./+@%:,=-]+$ ]] ||
        die "DIR must not contain spaces or special characters: '$DIR'"
    [[ $dbname =~ ^[A-Za-z_][A-Za-z0-9_]*$ && ${#dbname} -le 63 ]] ||
        die "DBNAME must match [A-Za-z_][A-Za-z0-9_]* (max 63 chars): '$dbname'"
    # Unix socket paths are limited to 107 bytes: DIR/sock/.s.PGSQL.NNNNN.
    ((${#SOCK} + 18 <= 107)) ||
        die "DIR is too long for a unix socket path (keep it under ~85 characters): $DIR"

    prepare_dir
    lock_dir

    local port
    if server_running; then
        # Reuse the running server: its port is recorded in DIR/env, or else
        # on line 4 of postmaster.pid.
        port=$(read_kv "$ENVFILE" MLG_PGPORT)
        if [[ -z $port && -r $DATA/postmaster.pid ]]; then
            port=$(sed -n 4p "$DATA/postmaster.pid")
        fi
        [[ $port =~ ^[0-9]+$ ]] ||
            die "a server runs on $DATA but its port is unknown; run '$PROG stop $DIR' and retry"
    else
        ensure_cluster
        port=$(start_server)
    fi

    # Prefer the psql matching the server, fall back to the one on PATH.
    local psql="$BINDIR/psql"
    [[ -x $psql ]] || psql=$(command -v psql) ||
        die "psql not found (install postgresql-client: scripts/deps.sh)"
    local conn=(-X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$port" -U "$PGUSER_NAME" -d postgres)

    local exists
    exists=$("$psql" "${conn[@]}" -At 9>&- \
        -c "SELECT 1 FROM pg_database WHERE datname = '$dbname'") ||
        die "cannot connect to the server on $SOCK port $port (see $LOG)"
    if [[ -z $exists ]]; then
        "$psql" "${conn[@]}" -c "CREATE DATABASE \"$dbname\"" >/dev/null 9>&- ||
            die "could not create database $dbname"
    fi

    local url="postgresql://$PGUSER_NAME@127.0.0.1:$port/$dbname"
    # Write atomically so readers never see a half-written file.
    local tmp="$ENVFILE.tmp.$$"
    cat >"$tmp" <<EOF
MLG_PGHOST=$SOCK
MLG_PGPORT=$port
MLG_PGUSER=$PGUSER_NAME
MLG_PGDATABASE=$dbname
MLG_DATABASE_URL=$url
MLG_PGDATA=$DATA
EOF
    chmod 0644 "$tmp"
    mv -f -- "$tmp" "$ENVFILE"

    echo "postgresql running: $url (data in $DATA)"
}

# ---------------------------------------------------------------------------
# stop / destroy
# ---------------------------------------------------------------------------

cmd_stop() {
    # Nothing to do (quietly) when there is no cluster or no server.
    [[ -f $DATA/PG_VERSION ]] || return 0
    lock_dir
    server_running || return 0
    if ! as_server "$BINDIR/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null 2>&1; then
        warn "fast shutdown failed, using immediate shutdown"
        as_server "$BINDIR/pg_ctl" -D "$DATA" -m immediate -w -t 60 stop >/dev/null 2>&1 || true
    fi
    if server_running; then
        die "the server on $DATA is still running"
    fi
}

cmd_destroy() {
    [[ -e $DIR ]] || return 0
    [[ -d $DIR ]] || die "$DIR is not a folder"
    # Guard against "destroy ~" and similar accidents: only delete a folder
    # that holds nothing but what this script creates.
    local entry name
    for entry in "$DIR"/* "$DIR"/.[!.]* "$DIR"/..?*; do
        [[ -e $entry || -L $entry ]] || continue
        name=${entry##*/}
        case $name in
        data | sock | env | env.tmp.* | postgres.log | initdb.log | .pg.lock) ;;
        *) die "refusing to remove $DIR: it contains '$name', which $PROG did not create" ;;
        esac
    done
    cmd_stop
    rm -rf -- "$DIR"
}

# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------

main() {
    [[ $# -ge 2 ]] || usage
    local cmd=$1
    [[ -n $2 ]] || usage
    case $cmd in
    start) [[ $# -le 3 ]] || usage ;;
    stop | destroy) [[ $# -eq 2 ]] || usage ;;
    *) usage ;;
    esac

    # "start" creates DIR first so that relative paths with missing parents
    # resolve to a clean absolute path.
    [[ $cmd != start ]] || mkdir -p -- "$2"
    DIR=$(abspath "$2")
    [[ $DIR != / ]] || die "refusing to use / as DIR"
    DATA="$DIR/data"
    SOCK="$DIR/sock"
    LOG="$DIR/postgres.log"
    ENVFILE="$DIR/env"

    init_identity
    BINDIR=$(find_bindir)

    case $cmd in
    start) cmd_start "${3:-maillage}" ;;
    stop) cmd_stop ;;
    destroy) cmd_destroy ;;
    esac
}

main "$@"
