#!/usr/bin/env bash
# Builds lowbit and its unit tests with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer (-fno-sanitize-recover=undefined: a UBSan report
# fails the test) into build-fuzz/ (the folder scripts/fuzz.sh uses: one
# sanitized build of the library serves both), and runs the tests of the
# loaders, file formats, tokenizers, recipes, configs, number formats and the
# CLI's error paths with CTest. The model-level tests (quantizing and
# evaluating stories260K or SmolLM2 end to end) are left out: under the
# sanitizers they alone would take longer than the rest of CI.
# Usage: scripts/sanitize_tests.sh [CTEST_REGEX]   (default: the subset below)
#   LOWBIT_FUZZ_BUILD   build folder (default build-fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${LOWBIT_FUZZ_BUILD:-build-fuzz}
jobs=$(( $(nproc) < 2 ? $(nproc) : 2 ))
subset='^(CheckedMath|Cli|CliErrors|FuzzCrashes|GgufReader|GgufBlockTypes|GgufBlockFixtures|GgmlTraits|GgmlTypeName|GgmlGolden|Safetensors|SafetensorsStreamWriter|SafetensorsShards|StreamRead|LowbitContainer|LowbitFile|ModelConfig|ModelSourceErrors|Llama2cMalformed|HfModelEditedFolder|TokenizerErrors|TokenizerHfOptions|TokenizerVocab|TokenizerMerge|TokenizerSpecialSplit|TokenizerRegex|TokenizerUtf8|TokenizerByteUnicode|TokenizerHfJson|TokenizerLlamaCppVocab|TokenizerStories260K|TokenizerVocabs/TokenizerLlamaCppVectors|Recipe|RotationSpec|KvSpec|KvCodec|BlockFormats|ElementTable|ElementValues|ElementGolden|ElementKernel|QuantRtn|QuantWeight|WeightFormat|CtConfig|CtPacking|Core|HugePageAllocator|Progress|EvalMetrics)\.'
regex=${1:-$subset}

nice -n 10 cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="${CXX_FUZZ:-clang++}" \
  -DLOWBIT_FUZZ=ON -DLOWBIT_BUILD_BENCH=OFF -DLOWBIT_PYTHON=OFF ${LOWBIT_FUZZ_CMAKE_ARGS:-} > "$build.configure.log" ||
  { cat "$build.configure.log"; exit 1; }
nice -n 10 cmake --build "$build" -j"$jobs" --target lowbit lowbit_tests
# detect_leaks: the tests' child processes (the lowbit CLI) report leaks too.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
(cd "$build" && nice -n 10 ctest --output-on-failure -j"$jobs" --timeout 900 -R "$regex")
