#!/usr/bin/env bash
# fuzz.sh SECONDS - build the libFuzzer targets (clang, ASan + UBSan) and
# run each for SECONDS over a scratch copy of its seed corpus. Any crash,
# leak or time-out fails the run; the input is left in fuzz/artifacts/.
# Make it a permanent regression: copy it to fuzz/regressions/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}

bash scripts/deps.sh
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
  -DMLG_FUZZ=ON -DMLG_TESTS=OFF -DMLG_SANITIZE=address,undefined -DMLG_WERROR=ON \
  >build-fuzz.configure.log 2>&1 || { cat build-fuzz.configure.log; exit 1; }
cmake --build build-fuzz -j "$(nproc 2>/dev/null || echo 2)"

mkdir -p fuzz/artifacts
status=0
for target in decode validate json config; do
  scratch=$(mktemp -d /tmp/maillage-fuzz-$target.XXXXXX)
  echo "== fuzz_$target for ${seconds}s"
  if ! ./build-fuzz/fuzz/fuzz_$target -max_total_time="$seconds" -timeout=10 \
      -rss_limit_mb=4096 -max_len=65536 -print_final_stats=1 \
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
