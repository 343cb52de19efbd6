#!/usr/bin/env bash
# Weighted MSE and CPU time of lowbit's GGUF block encoders against llama.cpp's
# own quantizers, type by type (scripts/compare_gguf_quantizers.cpp says what
# is measured). Needs lowbit built (build/liblowbit_lib.a) and a llama.cpp build
# with libggml-base.so, e.g. the one from the llama-cpp-python sdist:
#   LLAMA_CPP_LIB=/path/to/llama.cpp/build/bin ./scripts/compare_gguf_quantizers.sh [rows cols [type|all [weights.f32]]]
set -euo pipefail
cd "$(dirname "$0")/.."
lib="${LLAMA_CPP_LIB:-../peer/llama_cpp_python-0.3.36/vendor/llama.cpp/build/bin}"
if [ ! -f "$lib/libggml-base.so" ]; then
  echo "compare_gguf_quantizers: no libggml-base.so in $lib (set LLAMA_CPP_LIB)" >&2
  exit 1
fi
out=build/compare_gguf_quantizers
g++ -std=c++20 -O2 -Isrc scripts/compare_gguf_quantizers.cpp build/liblowbit_lib.a -lfmt \
  -L"$lib" -lggml-base -Wl,-rpath,"$(cd "$lib" && pwd)" -o "$out"
"$out" "$@"
