#!/usr/bin/env bash
# fuzz.sh SECONDS - build the libFuzzer targets (clang, ASan + UBSan) and
# run each for SECONDS over a scratch copy of its seed corpus, after one
# pass over the costliest inputs we can build (fuzz/worst_seeds.c; kept
# out of the corpus, where 1 MiB inputs would slow every mutation a
# hundredfold). Inputs go up to the
# real frame limit (1 MiB; the configuration loader, which reads an
# operator's file and not the network, keeps 64 KiB), and a unit slower
# than 5 seconds fails the run as a time-out: on this sanitized build
# the worst 1 MiB frame takes well under one second to decode or
# validate. The JSON conversion gets more: jansson allocates a value per
# nested array, and ASan's allocator makes the worst 1 MiB document
# (500,000 arrays) take about 5 s, linearly. Any crash, leak or
# time-out fails the run; the input is left in fuzz/artifacts/.
# Make it a permanent regression: copy it to fuzz/regressions/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
frame_limit=1048576

bash scripts/deps.sh
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
  -DMLG_FUZZ=ON -DMLG_TESTS=OFF -DMLG_SANITIZE=address,undefined -DMLG_WERROR=ON \
  >build-fuzz.configure.log 2>&1 || { cat build-fuzz.configure.log; exit 1; }
cmake --build build-fuzz -j "$(nproc 2>/dev/null || echo 2)"

mkdir -p fuzz/artifacts
status=0
for target in decode validate json config; do
  scratch=$(mktemp -d /tmp/maillage-fuzz-$target.XXXXXX)
  max_len=$frame_limit
  slow=5
  [ "$target" = json ] && slow=20
  if [ "$target" = config ]; then
    max_len=65536
  else
    worst=$(mktemp -d /tmp/maillage-worst-$target.XXXXXX)
    ./build-fuzz/fuzz/worst_seeds "$target" "$worst"
    echo "== fuzz_$target: the worst inputs, each within ${slow}s"
    if ! ./build-fuzz/fuzz/fuzz_$target -runs=0 -timeout="$slow" -rss_limit_mb=4096 \
        -max_len="$max_len" -artifact_prefix="fuzz/artifacts/$target-" \
        "$worst" 2>"build-fuzz/$target-worst.log"; then
      tail -20 "build-fuzz/$target-worst.log"
      echo "fuzz.sh: fuzz_$target was slow or failed on a worst input" >&2
      status=1
    fi
    grep -a 'stat::slowest_unit_time_sec\|DONE' "build-fuzz/$target-worst.log" | sed "s/^/  $target /" || true
    rm -rf "$worst"
  fi
  echo "== fuzz_$target for ${seconds}s (inputs up to $max_len bytes, slow unit: ${slow}s)"
  if ! ./build-fuzz/fuzz/fuzz_$target -max_total_time="$seconds" -timeout="$slow" \
      -rss_limit_mb=4096 -max_len="$max_len" -print_final_stats=1 \
      -artifact_prefix="fuzz/artifacts/$target-" \
      "$scratch" "fuzz/corpus/$target" 2>"build-fuzz/$target.log"; then
    tail -40 "build-fuzz/$target.log"
    echo "fuzz.sh: fuzz_$target found a problem; input in fuzz/artifacts/" >&2
    status=1
  else
    grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "build-fuzz/$target.log" \
      | sed "s/^/  $target /"
  fi
  rm -rf "$scratch"
done
exit "$status"
