#!/usr/bin/env bash
# Cross-builds lowbit's lean aarch64 test binary (CMake LOWBIT_CORE_ONLY,
# cmake/aarch64-linux-gnu.cmake) into build-aarch64/ and runs it under qemu user
# emulation at every ARM ISA level (LOWBIT_ISA=generic, neon, neon-dotprod,
# neon-i8mm; `-cpu max` has them all). Exits non-zero on any failure. Prints the
# seconds each phase took. ARM speed cannot be measured this way (docs/RUNTIME.md).
#
#   scripts/test_aarch64.sh            install what is missing, configure, build, test
#   LOWBIT_AARCH64_JOBS=N              build parallelism (default: nproc)
#   LOWBIT_AARCH64_FILTER=...          gtest filter for every level (default: the whole binary at
#                                      neon-i8mm, the suites whose kernels depend on the level below it;
#                                      the kernel tests also loop over every level within one run)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build="$root/build-aarch64"
jobs="${LOWBIT_AARCH64_JOBS:-$(nproc)}"
level_suites='CpuFeatures*:KernelTable*:PackedKernels*:PackedLinear*:W8A8*:ModelGolden*'
export LOWBIT_SHARED_DIR="${LOWBIT_SHARED_DIR:-$root/../shared}"
# OpenBLAS's own worker threads spin-wait, which under emulation on a small
# machine starves the test's threads: one BLAS thread (lowbit's pool does the threading).
export OPENBLAS_NUM_THREADS=1

phase_start=$(date +%s)
phase() {  # phase NAME: prints the seconds since the previous phase ended
  local now
  now=$(date +%s)
  echo "test_aarch64: $1: $((now - phase_start)) s"
  phase_start=$now
}

# 1. Packages: the cross compiler, qemu, and the arm64 multiarch -dev packages the
# lean build links (fmt, pcre2, OpenBLAS, GoogleTest; nlohmann-json is headers).
# Not libsentencepiece-dev:arm64: Debian cannot install it next to the host's
# (it would remove the amd64 one); the lean build goes without it.
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
packages=(g++-aarch64-linux-gnu qemu-user nlohmann-json3-dev
          libfmt-dev:arm64 libpcre2-dev:arm64 libopenblas-dev:arm64 libgtest-dev:arm64)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "test_aarch64: installing ${missing[*]}"
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then $SUDO dpkg --add-architecture arm64; fi
  # A machine whose package mirrors carry no arm64 packages cannot run these tests: say so
  # loudly and stop here, as tests without their material do; a failing build or test fails.
  unavailable() {
    echo "test_aarch64: SKIPPED, the aarch64 tests did NOT run: $1" >&2
    exit 0
  }
  $SUDO apt-get update || unavailable "apt-get update failed"
  # Never let an :arm64 package replace a host one (a -dev package that is not
  # Multi-Arch: same does): simulate first and refuse any removal.
  simulated=$(apt-get -s install --no-install-recommends "${missing[@]}") ||
    unavailable "apt-get cannot install ${missing[*]} here"
  removals=$(sed -n 's/^Remv \([^ ]*\).*/\1/p' <<<"$simulated")
  if [ -n "$removals" ]; then
    echo "test_aarch64: installing ${missing[*]} would remove $(echo $removals); refusing" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}" ||
    unavailable "could not install ${missing[*]}"
fi
phase "packages"

# 2. Configure: the toolchain file, the lean library and lowbit_tests_aarch64 only.
cmake -S "$root" -B "$build" -DCMAKE_TOOLCHAIN_FILE="$root/cmake/aarch64-linux-gnu.cmake" \
  -DCMAKE_BUILD_TYPE=Release -DLOWBIT_CORE_ONLY=ON -DLOWBIT_BUILD_BENCH=OFF \
  -DLOWBIT_SHARED_DIR="$LOWBIT_SHARED_DIR" >/dev/null
phase "configure"

# 3. Build only the test binary (and the library it needs).
cmake --build "$build" -j "$jobs" --target lowbit_tests_aarch64
phase "build"

# 4. Run at every ARM level under qemu.
qemu=(qemu-aarch64 -cpu max -L /usr/aarch64-linux-gnu)
"${qemu[@]}" "$build/lowbit_tests_aarch64" --gtest_filter='CpuFeatures.DetectionAgreesWithTheCompilerRuntime' \
  >/dev/null || { echo "test_aarch64: the binary does not run under ${qemu[*]}"; exit 1; }
failed=0
# Detection from the auxiliary vector on emulated CPUs with fewer features: a
# level the CPU lacks is refused (active_isa warns and falls back), one it has is not.
detect() {  # detect CPU LEVEL accepted|refused
  local out
  out=$(LOWBIT_ISA=$2 qemu-aarch64 -cpu "$1" -L /usr/aarch64-linux-gnu "$build/lowbit_tests_aarch64" \
        --gtest_filter='CpuFeatures.DetectionAgreesWithTheCompilerRuntime' 2>&1) || { echo "$out"; failed=1; return; }
  if grep -q "LOWBIT_ISA=$2: not supported" <<<"$out"; then got=refused; else got=accepted; fi
  [ "$got" = "$3" ] || { echo "test_aarch64: -cpu $1: LOWBIT_ISA=$2 $got, expected $3"; failed=1; }
}
detect cortex-a53 neon accepted
detect cortex-a53 neon-dotprod refused
detect cortex-a76 neon-dotprod accepted
detect cortex-a76 neon-i8mm refused
detect max neon-i8mm accepted
phase "detection on cortex-a53, cortex-a76, max"
# The four levels run two at a time (each qemu process is one thread; 2 cores),
# each into its own log, printed when it ends.
run_level() {  # run_level ISA: the level's tests, output in $build/qemu_ISA.log
  local isa=$1 filter="${LOWBIT_AARCH64_FILTER:-$level_suites}"
  [ -n "${LOWBIT_AARCH64_FILTER:-}" ] || [ "$isa" != neon-i8mm ] || filter='*'
  echo "test_aarch64: LOWBIT_ISA=$isa --gtest_filter=$filter" > "$build/qemu_$isa.log"
  LOWBIT_ISA=$isa "${qemu[@]}" "$build/lowbit_tests_aarch64" --gtest_filter="$filter" --gtest_brief=1 \
    >> "$build/qemu_$isa.log" 2>&1
}
levels=(neon-i8mm generic neon neon-dotprod)  # the whole binary (the longest run) first
for ((i = 0; i < ${#levels[@]}; i += jobs)); do
  pids=()
  for isa in "${levels[@]:i:jobs}"; do
    run_level "$isa" &
    pids+=($!)
  done
  for j in "${!pids[@]}"; do
    isa=${levels[i + j]}
    if ! wait "${pids[j]}"; then
      echo "test_aarch64: FAILED at LOWBIT_ISA=$isa"
      failed=1
    fi
    cat "$build/qemu_$isa.log"
  done
  phase "tests at ${levels[*]:i:jobs}"
done
exit $failed
