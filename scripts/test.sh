#!/usr/bin/env bash
# Installs dependencies, builds, and runs the whole test suite with CTest.
# Shared test material is found through LOWBIT_SHARED_DIR (default ../shared);
# tests that need it skip with a message when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install_deps.sh
./scripts/build.sh
# SmolLM2-135M for the tests that use the real model (they skip with a message without it).
./scripts/fetch_model.sh > /dev/null || echo "test.sh: SmolLM2-135M not fetched; its tests will skip"
cd build
ctest --output-on-failure -j"$(nproc)" --timeout 600
