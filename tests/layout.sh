#!/usr/bin/env bash
# layout.sh: the tree keeps the shape docs/broker.md describes
# (issue "One module, one job"). Fails, naming each place, when:
#   - a file of broker/ other than the store's modules (store*.c,
#     store_int.h) and the migrations (migrate.[ch], run on the store's
#     connection) includes libpq-fe.h;
#   - a file outside lib/ (and the fuzz and test harnesses) includes
#     msgpack.h;
#   - a file of tools/ includes a header of broker/;
#   - a function of broker/, lib/, adapters/, tools/ or common/ is over
#     100 lines (its opening brace to its closing one, both at column 0);
#   - a file of broker/ is over 600 lines.
set -uo pipefail
cd "${1:-$(dirname "$0")/..}"
problems=0
say() { echo "layout: $*"; problems=$((problems + 1)); }

for f in broker/*.c broker/*.h; do
  case "$(basename "$f")" in store*.c | store_int.h | migrate.[ch]) continue ;; esac
  grep -q '^#include <libpq-fe.h>' "$f" && say "$f includes libpq-fe.h (only the store's modules may)"
done

for f in $(ls broker/*.[ch] common/*.[ch] adapters/*/*.[ch] adapters/*.[ch] tools/*.[ch] include/maillage/*.h 2>/dev/null); do
  grep -q '^#include <msgpack.h>' "$f" && say "$f includes msgpack.h (only lib/ may)"
done

broker_headers=$(cd broker && ls *.h)
for f in tools/*.[ch]; do
  for h in $broker_headers; do
    grep -q "^#include \"$h\"" "$f" && say "$f includes broker/$h"
  done
done

long=$(for f in $(ls broker/*.c lib/*.c adapters/*.c adapters/*/*.c tools/*.c common/*.c 2>/dev/null); do
  awk -v file="$f" '
    /^\{/ { start = NR; name = prev }
    /^\}/ && start { if (NR - start + 1 > 100) printf "%s:%d: %s is %d lines (over 100)\n", file, start, name, NR - start + 1; start = 0 }
    /^[A-Za-z_][A-Za-z0-9_]*\(/ { prev = $0; sub(/\(.*/, "", prev) }
  ' "$f"
done)
while read -r line; do [ -n "$line" ] && say "$line"; done <<<"$long"

for f in broker/*.c; do
  n=$(wc -l <"$f")
  [ "$n" -gt 600 ] && say "$f is $n lines (over 600)"
done

if [ "$problems" -gt 0 ]; then
  echo "layout: $problems problem(s)"
  exit 1
fi
echo "layout: the includes, the functions and the files keep their bounds"
