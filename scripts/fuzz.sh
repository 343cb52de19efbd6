#!/usr/bin/env bash
# Builds the libFuzzer harnesses (fuzz/) with clang, ASan and UBSan into
# build-fuzz/ and runs each for SECONDS seconds (default 60) from a seed corpus
# made by fuzz/make_seeds.py, with the target's dictionary (fuzz/<target>.dict).
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]     (no target: all six)
#   LOWBIT_FUZZ_BUILD   build folder (default build-fuzz)
#   LOWBIT_FUZZ_ARGS    extra libFuzzer flags, e.g. "-runs=1000000" (then SECONDS is only the ceiling)
#   LOWBIT_FUZZ_NICE    niceness of the build and the runs (default 10)
# Each run's log is build-fuzz/logs/<target>.log; crash, timeout and OOM inputs
# land in build-fuzz/artifacts/<target>/. Exits non-zero when any target fails.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(gguf lowbit safetensors tokenizer_json recipe kv_config)
build=${LOWBIT_FUZZ_BUILD:-build-fuzz}
nice_n=${LOWBIT_FUZZ_NICE:-10}
jobs=$(( $(nproc) < 2 ? $(nproc) : 2 ))
mkdir -p "$build"

CXX=${CXX_FUZZ:-clang++} nice -n "$nice_n" cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER="${CXX_FUZZ:-clang++}" -DLOWBIT_FUZZ=ON -DLOWBIT_BUILD_BENCH=OFF -DLOWBIT_PYTHON=OFF \
  ${LOWBIT_FUZZ_CMAKE_ARGS:-} > "$build/configure.log" || { cat "$build/configure.log"; exit 1; }
build_targets=()
for t in "${targets[@]}"; do build_targets+=(--target "fuzz_$t"); done
nice -n "$nice_n" cmake --build "$build" -j"$jobs" "${build_targets[@]}"

python3 fuzz/make_seeds.py "$build/seeds"
mkdir -p "$build/logs"
# One target's run; prints its result line (to stderr on failure) and returns its status.
run_target() {
  local t=$1 corpus="$build/corpus/$1" artifacts="$build/artifacts/$1" start rc=0 elapsed stats
  mkdir -p "$corpus" "$artifacts"
  # -max_len: real seeds are at most a few KB; 64 KB leaves room to grow
  # (nested JSON, long metadata arrays) while keeping one run in milliseconds.
  # -rss_limit_mb/-malloc_limit_mb: a loader that allocates from an unchecked
  # count fails here. -timeout: one input taking 10 s is a hang.
  start=$(date +%s)
  nice -n "$nice_n" "$build/fuzz/fuzz_$t" "$corpus" "$build/seeds/$t" -dict="fuzz/$t.dict" \
    -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" ${LOWBIT_FUZZ_ARGS:-} \
    > "$build/logs/$t.log" 2>&1 || rc=$?
  elapsed=$(( $(date +%s) - start ))
  stats=$(grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$build/logs/$t.log" |
          sed 's/^stat:://' | tr '\n' ' ')
  if [ "$rc" -eq 0 ]; then
    echo "fuzz: $t: ok, ${elapsed} s, $stats"
  else
    echo "fuzz: $t: FAILED (exit $rc) after ${elapsed} s, $stats; log $build/logs/$t.log" >&2
    grep -E 'ERROR|SUMMARY|==[0-9]+==|runtime error' "$build/logs/$t.log" | head -20 >&2 || true
  fi
  return "$rc"
}
# The targets run $jobs at a time (one core each: a libFuzzer run is single-threaded),
# so CI pays 6 x SECONDS / 2 of wall time instead of 6 x SECONDS.
status=0
for ((i = 0; i < ${#targets[@]}; i += jobs)); do
  pids=()
  for t in "${targets[@]:i:jobs}"; do
    run_target "$t" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || status=1; done
done
exit $status
