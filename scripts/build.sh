#!/usr/bin/env bash
# Configures and builds lowbit (Release) into build/.
# Usage: scripts/build.sh [TARGET...]   (no target: everything, tests and the Python module included)
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release ${LOWBIT_CMAKE_ARGS:-}
targets=()
for t in "$@"; do targets+=(--target "$t"); done
cmake --build build -j"$(nproc)" "${targets[@]}"
