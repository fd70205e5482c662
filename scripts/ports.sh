# shellcheck shell=bash
# ports.sh - free TCP ports for the private servers of scripts/pg.sh and
# scripts/rabbitmq.sh, which source it (it runs nothing by itself).
#
# Ports are drawn in PORT_MIN-PORT_MAX, below the kernel's ephemeral range
# (32768+): a restarted server keeps its port, which an outgoing connection
# could otherwise hold. The caller defines die().

readonly PORT_MIN=20000
readonly PORT_MAX=32000

random_port() {
    # $RANDOM is only 15 bits; combine two to cover the whole range.
    echo $((PORT_MIN + ((RANDOM << 15) | RANDOM) % (PORT_MAX - PORT_MIN + 1)))
}

# A port is free when nothing listens on it (ss, any address) and nothing
# answers a TCP connection on 127.0.0.1.
port_free() {
    local port=$1
    if command -v ss >/dev/null 2>&1; then
        if ss -ltn 2>/dev/null |
            awk -v p=":$port" 'NR > 1 && substr($4, length($4) - length(p) + 1) == p { f = 1 } END { exit !f }'; then
            return 1
        fi
    fi
    # Connection refused => free.  The subshell keeps fd 3 out of this shell.
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        return 1
    fi
    return 0
}

# Prints a free port, other than the ports given (a server that needs
# several picks them before it binds any; pg.sh needs one).
# shellcheck disable=SC2120
pick_port() {
    local i port t taken
    for ((i = 0; i < 100; i++)); do
        port=$(random_port)
        taken=0
        for t in "$@"; do [[ $t == "$port" ]] && taken=1; done
        if [[ $taken -eq 0 ]] && port_free "$port"; then
            echo "$port"
            return
        fi
    done
    die "could not find a free TCP port in $PORT_MIN-$PORT_MAX"
}
