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
mkdir -p "$build"
subset='^(CheckedMath|Cli|CliErrors|FuzzCrashes|GgufReader|GgufBlockTypes|GgufBlockFixtures|GgmlTraits|GgmlTypeName|GgmlGolden|Safetensors|SafetensorsStreamWriter|SafetensorsShards|StreamRead|LowbitContainer|LowbitFile|ModelConfig|ModelSourceErrors|Llama2cMalformed|HfModelEditedFolder|TokenizerErrors|TokenizerHfOptions|TokenizerVocab|TokenizerMerge|TokenizerSpecialSplit|TokenizerRegex|TokenizerUtf8|TokenizerByteUnicode|TokenizerHfJson|TokenizerLlamaCppVocab|TokenizerStories260K|TokenizerVocabs/TokenizerLlamaCppVectors|Recipe|RotationSpec|KvSpec|KvCodec|BlockFormats|ElementTable|ElementValues|ElementGolden|ElementKernel|QuantRtn|QuantWeight|WeightFormat|CtConfig|CtPacking|Core|HugePageAllocator|Progress|EvalMetrics)\.'
regex=${1:-$subset}
# The files that hold those suites (and the tests' model writers): only they are compiled.
files='/(model_writers|test_block_formats|test_checked_math|test_cli|test_cli_errors|test_element_formats|test_element_golden|test_element_kernel|test_eval_metrics|test_export_ct|test_fuzz_crashes|test_ggml_types|test_gguf_blocks|test_gguf_blocks_fixtures|test_gguf_reader|test_hf_model|test_huge_page_allocator|test_kv_codec|test_kv_spec|test_llama2c_model|test_lowbit_file|test_model_config|test_model_source|test_ops|test_progress|test_quant_gguf|test_quant_rtn|test_recipe|test_rotation|test_safetensors|test_stream_read|test_tokenizer_errors|test_tokenizer_hf_options|test_tokenizer_models|test_tokenizer_units|test_tokenizer_vocab)\.cpp$'
[ $# -gt 0 ] && files='\.cpp$'  # a regex of the caller's: every test file

nice -n 10 cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="${CXX_FUZZ:-clang++}" \
  -DLOWBIT_FUZZ=ON -DLOWBIT_BUILD_BENCH=OFF -DLOWBIT_PYTHON=OFF -DLOWBIT_TEST_FILES="$files" \
  ${LOWBIT_FUZZ_CMAKE_ARGS:-} > "$build/configure.log" ||
  { cat "$build/configure.log"; exit 1; }
nice -n 10 cmake --build "$build" -j"$jobs" --target lowbit lowbit_tests
# detect_leaks: the tests' child processes (the lowbit CLI) report leaks too.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
(cd "$build" && nice -n 10 ctest --output-on-failure -j"$jobs" --timeout 900 -R "$regex")
