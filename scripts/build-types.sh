#!/usr/bin/env bash
# build-types.sh - compile maillage (no tests run) with -Wall -Wextra as
# errors in the build types and compilers that test.sh does not test:
# a warning that only one optimisation level shows (gcc's
# format-truncation at -O0, for one) fails here rather than on a user's
# machine. test.sh already builds gcc RelWithDebInfo and clang Debug.
#
#   scripts/build-types.sh                  the CI set (below)
#   scripts/build-types.sh all              every type with both compilers
#   scripts/build-types.sh gcc:Debug ...    the pairs named
#
# The CI set is gcc Debug, Release and MinSizeRel (gcc's warnings move
# with its optimiser) and clang Release (clang's hardly do; its
# RelWithDebInfo and MinSizeRel are checked by "all"). Each build goes
# to build-types/<compiler>-<type>/, at -j2.
set -euo pipefail
cd "$(dirname "$0")/.."

pairs=("$@")
if [ ${#pairs[@]} -eq 0 ]; then
  pairs=(gcc:Debug gcc:Release gcc:MinSizeRel clang:Release)
elif [ "${pairs[0]}" = all ]; then
  pairs=()
  for cc in gcc clang; do
    for type in Debug Release RelWithDebInfo MinSizeRel; do
      pairs+=("$cc:$type")
    done
  done
fi

status=0
for pair in "${pairs[@]}"; do
  cc=${pair%%:*}
  type=${pair#*:}
  dir="build-types/$cc-$type"
  mkdir -p "$dir"
  if cmake -S . -B "$dir" -DMLG_WERROR=ON -DCMAKE_BUILD_TYPE="$type" \
       -DCMAKE_C_COMPILER="$cc" >"$dir.configure.log" 2>&1 \
     && cmake --build "$dir" -j2 >"$dir.build.log" 2>&1; then
    echo "build-types: $cc $type: clean"
  else
    echo "build-types: $cc $type: FAILED" >&2
    grep -E 'error|warning' "$dir.build.log" "$dir.configure.log" | head -20 >&2 || true
    status=1
  fi
done
exit "$status"
