#!/usr/bin/env bash
# deps.sh - install, from Debian's packages, whatever maillage needs and
# this machine lacks. Safe to run again: it installs only what is missing.
#
#   scripts/deps.sh          build, test, demo and fuzz dependencies
#   scripts/deps.sh PKG...   those, and the named packages too (CI adds
#                            docker-compose to check docker-compose.yml)
#
# Needs root (or sudo) only when something is missing.
set -euo pipefail

packages=(
  build-essential cmake pkg-config       # the build
  libzmq3-dev libczmq-dev                 # ZeroMQ and czmq
  libmsgpack-dev                          # msgpack-c
  libpq-dev postgresql                    # libpq, and a server for tests and demo
  libjansson-dev                          # JSON (schemas, adapters, CLI)
  libsodium-dev                           # BLAKE2b for the audit chain
  libmicrohttpd-dev                       # the broker's HTTP endpoint (/metrics, dashboard)
  chromium                                # the dashboard's test, in headless Chromium
  libcmocka-dev                           # unit tests
  rabbitmq-server librabbitmq-dev         # the side-by-side benchmark (tools/bench/rabbit_bench.c)
  clang libclang-rt-14-dev                # libFuzzer and the sanitizer build
)

packages+=("$@")
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "deps.sh: installing ${missing[*]}"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then
    sudo=(sudo)
  else
    echo "deps.sh: missing packages (${missing[*]}) and not root: install them as root" >&2
    exit 2
  fi
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
