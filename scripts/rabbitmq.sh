#!/usr/bin/env bash
# rabbitmq.sh - manage a private, throw-away RabbitMQ node living in one
# folder, for the side-by-side benchmark (docs/performance.md, "Side by side
# with RabbitMQ"). It mirrors scripts/pg.sh.
#
# Usage:
#   scripts/rabbitmq.sh start   DIR   start (or reuse) a node; prints its AMQP port
#   scripts/rabbitmq.sh stop    DIR   stop the node and its epmd (no-op if none runs)
#   scripts/rabbitmq.sh destroy DIR   stop them and delete DIR
#
# Layout of DIR (everything the script creates lives here):
#   DIR/rabbitmq.conf      the node's configuration (RABBITMQ_CONFIG_FILE):
#                          one listener on 127.0.0.1
#   DIR/enabled_plugins    "[]." (RABBITMQ_ENABLED_PLUGINS_FILE): no plugin,
#                          no management
#   DIR/rabbitmq-env.conf  empty (RABBITMQ_CONF_ENV_FILE), so that
#                          /etc/rabbitmq/rabbitmq-env.conf does not apply
#   DIR/mnesia/            the node's data (RABBITMQ_MNESIA_BASE): queues,
#                          quorum logs, feature flags
#   DIR/log/               the node's log (RABBITMQ_LOG_BASE), NODE.log
#   DIR/server.log         what rabbitmq-server printed
#   DIR/.erlang.cookie     the node's own cookie (HOME is DIR)
#   DIR/rabbitmq.pid       the node's process (RABBITMQ_PID_FILE)
#   DIR/epmd.pid           the epmd this script started, on a port of its own
#   DIR/env                KEY=VALUE, sourceable by sh and parseable from C:
#                            MLG_RABBIT_PORT MLG_RABBIT_URL MLG_RABBIT_NODE
#                            MLG_RABBIT_DIST_PORT MLG_RABBIT_EPMD_PORT
#                            MLG_RABBIT_PID
#
# The node listens on 127.0.0.1 only, on free ports in 20000-32000 (below
# the kernel's ephemeral range): AMQP, Erlang distribution and epmd, with a
# node name of its own (mlgbench-XXXXXX@localhost). So it never meets a
# system node the Debian package may have started (rabbit@HOST, 5672,
# 25672, epmd on 4369), which can keep running or be stopped with
# `systemctl disable --now rabbitmq-server`. Its user is the default guest,
# which RabbitMQ lets in from loopback only: for benchmarks, never for data.
#
# Environment:
#   MLG_RABBITMQ_SERVER   the rabbitmq-server script to run (default: Debian's
#                         /usr/lib/rabbitmq/bin/rabbitmq-server, not the
#                         /usr/sbin wrapper, which switches user and folder)
#   MLG_RABBITMQ_WAIT     seconds to wait for the node (default 180: it takes
#                         10-30 s to boot on a busy 2-core machine)

set -euo pipefail
shopt -s inherit_errexit

readonly PROG="scripts/rabbitmq.sh"

die() {
    echo "$PROG: error: $*" >&2
    exit 1
}

warn() {
    echo "$PROG: $*" >&2
}

usage() {
    cat >&2 <<EOF
usage: $PROG start   DIR   start (or reuse) a private node in DIR; prints its AMQP port
       $PROG stop    DIR   stop the node running on DIR, and its epmd
       $PROG destroy DIR   stop them and remove DIR
EOF
    exit 2
}

abspath() {
    local p=$1
    [[ $p == /* ]] || p="$PWD/$p"
    printf '%s\n' "${p%/}"
}

read_kv() {
    local file=$1 key=$2
    [[ -f $file ]] || return 0
    sed -n "s/^$key=//p" "$file" | tail -n 1
}

# The rabbitmq-server script that starts a node in the foreground.
find_server() {
    local s
    for s in "${MLG_RABBITMQ_SERVER:-}" /usr/lib/rabbitmq/bin/rabbitmq-server \
        /usr/lib/rabbitmq/sbin/rabbitmq-server; do
        [[ -n $s && -x $s ]] && { echo "$s"; return; }
    done
    die "rabbitmq-server not installed: apt-get install rabbitmq-server (scripts/deps.sh)"
}

find_epmd() {
    command -v epmd 2>/dev/null && return
    local e
    e=$(compgen -G '/usr/lib/erlang/erts-*/bin/epmd' | sort -V | tail -n 1 || true)
    [[ -n $e ]] || die "epmd not found (it comes with rabbitmq-server's Erlang)"
    echo "$e"
}

# random_port, port_free, pick_port (20000-32000, below the ephemeral range)
# shellcheck source=scripts/ports.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/ports.sh"

pid_alive() {
    [[ $1 =~ ^[0-9]+$ ]] && kill -0 "$1" 2>/dev/null
}

node_running() {
    pid_alive "$(read_kv "$ENVFILE" MLG_RABBIT_PID)"
}

# ---------------------------------------------------------------------------
# start
# ---------------------------------------------------------------------------

write_files() {
    local port=$1
    mkdir -p -- "$DIR/mnesia" "$DIR/log"
    cat >"$DIR/rabbitmq.conf" <<EOF
# written by $PROG: one listener on loopback, the defaults otherwise
listeners.tcp.1 = 127.0.0.1:$port
log.file.level = info
EOF
    echo '[].' >"$DIR/enabled_plugins"
    : >"$DIR/rabbitmq-env.conf"
}

# Waits until the node's log says it started and its port answers; fails
# with the log's last lines when the node dies or the wait runs out.
wait_started() {
    local pid=$1 port=$2 log=$3 wait=${MLG_RABBITMQ_WAIT:-180} i
    for ((i = 0; i < wait * 10; i++)); do
        if ! pid_alive "$pid"; then
            tail -n 30 "$DIR/server.log" >&2 || true
            die "the node exited while starting (its log: $log)"
        fi
        if grep -q 'Server startup complete' "$log" 2>/dev/null &&
            (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return
        fi
        sleep 0.1
    done
    tail -n 30 "$log" >&2 || true
    cmd_stop
    die "the node did not start within $wait s (MLG_RABBITMQ_WAIT)"
}

cmd_start() {
    [[ $DIR =~ ^[A-Za-z0-9_./+@%:,=-]+$ ]] ||
        die "DIR must not contain spaces or special characters: '$DIR'"
    if node_running; then
        read_kv "$ENVFILE" MLG_RABBIT_PORT
        return
    fi
    local server epmd
    server=$(find_server)
    epmd=$(find_epmd)
    mkdir -p -- "$DIR"
    local port dist epmd_port node
    port=$(pick_port)
    dist=$(pick_port "$port")
    epmd_port=$(pick_port "$port" "$dist")
    node="mlgbench-$(printf '%06d' $((RANDOM * RANDOM % 1000000)))@localhost"
    write_files "$port"

    # Our own epmd, so that the node registers nowhere else and stop can
    # end exactly the epmd it started.
    setsid "$epmd" -port "$epmd_port" -address 127.0.0.1 </dev/null >"$DIR/epmd.log" 2>&1 &
    echo $! >"$DIR/epmd.pid"

    local log="$DIR/log/$node.log"
    (
        cd "$DIR"
        export HOME="$DIR" ERL_EPMD_PORT="$epmd_port" \
            RABBITMQ_NODENAME="$node" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
            RABBITMQ_NODE_PORT="$port" RABBITMQ_DIST_PORT="$dist" \
            RABBITMQ_MNESIA_BASE="$DIR/mnesia" RABBITMQ_LOG_BASE="$DIR/log" \
            RABBITMQ_CONFIG_FILE="$DIR/rabbitmq.conf" \
            RABBITMQ_ADVANCED_CONFIG_FILE="$DIR/advanced.config" \
            RABBITMQ_ENABLED_PLUGINS_FILE="$DIR/enabled_plugins" \
            RABBITMQ_CONF_ENV_FILE="$DIR/rabbitmq-env.conf" \
            RABBITMQ_PID_FILE="$DIR/rabbitmq.pid" \
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
        exec setsid "$server" </dev/null >"$DIR/server.log" 2>&1
    ) &
    local launcher=$!

    # The node's own process (beam.smp), which the pid file names once it
    # runs; the launcher is a shell that waits for it.
    local i pid=""
    for ((i = 0; i < 600; i++)); do
        pid=$(cat "$DIR/rabbitmq.pid" 2>/dev/null || true)
        [[ $pid =~ ^[0-9]+$ ]] && break
        pid_alive "$launcher" || break
        sleep 0.1
    done
    [[ $pid =~ ^[0-9]+$ ]] || pid=$launcher
    local tmp="$ENVFILE.tmp.$$"
    cat >"$tmp" <<EOF
MLG_RABBIT_PORT=$port
MLG_RABBIT_URL=amqp://guest:guest@127.0.0.1:$port/
MLG_RABBIT_NODE=$node
MLG_RABBIT_DIST_PORT=$dist
MLG_RABBIT_EPMD_PORT=$epmd_port
MLG_RABBIT_PID=$pid
EOF
    mv -f -- "$tmp" "$ENVFILE"
    wait_started "$pid" "$port" "$log"
    warn "rabbitmq running: amqp://127.0.0.1:$port (node $node, data in $DIR)"
    echo "$port"
}

# ---------------------------------------------------------------------------
# stop / destroy
# ---------------------------------------------------------------------------

# Ends one process: SIGTERM (a node shuts down cleanly on it), then
# SIGKILL after `wait` seconds.
end_process() {
    local pid=$1 wait=$2 i
    pid_alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < wait * 10; i++)); do
        pid_alive "$pid" || return 0
        sleep 0.1
    done
    warn "process $pid did not stop within $wait s: killing it"
    kill -KILL "$pid" 2>/dev/null || true
}

cmd_stop() {
    end_process "$(read_kv "$ENVFILE" MLG_RABBIT_PID)" 60
    if [[ -f $DIR/epmd.pid ]]; then
        end_process "$(cat "$DIR/epmd.pid")" 10
        rm -f -- "$DIR/epmd.pid"
    fi
}

cmd_destroy() {
    [[ -e $DIR ]] || return 0
    [[ -d $DIR ]] || die "$DIR is not a folder"
    local entry name
    for entry in "$DIR"/* "$DIR"/.[!.]* "$DIR"/..?*; do
        [[ -e $entry || -L $entry ]] || continue
        name=${entry##*/}
        case $name in
        rabbitmq.conf | enabled_plugins | rabbitmq-env.conf | mnesia | log | server.log | \
            .erlang.cookie | rabbitmq.pid | epmd.pid | epmd.log | env | env.tmp.*) ;;
        *) die "refusing to remove $DIR: it contains '$name', which $PROG did not create" ;;
        esac
    done
    cmd_stop
    rm -rf -- "$DIR"
}

main() {
    [[ $# -eq 2 && -n $2 ]] || usage
    case $1 in
    start | stop | destroy) ;;
    *) usage ;;
    esac
    DIR=$(abspath "$2")
    [[ $DIR != / ]] || die "refusing to use / as DIR"
    ENVFILE="$DIR/env"
    case $1 in
    start) cmd_start ;;
    stop) cmd_stop ;;
    destroy) cmd_destroy ;;
    esac
}

main "$@"
