#!/usr/bin/env bash
# Configures and builds lowbit (Release) into build/.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release ${LOWBIT_CMAKE_ARGS:-}
cmake --build build -j"$(nproc)"
