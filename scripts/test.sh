#!/usr/bin/env bash
# Installs dependencies, builds, and runs the whole test suite with CTest, then
# the Python package's pytest suite against the module in build/python.
# Shared test material is found through LOWBIT_SHARED_DIR (default ../shared);
# tests that need it skip with a message when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install_deps.sh
./scripts/build.sh
# SmolLM2-135M for the tests that use the real model (they skip with a message without it).
./scripts/fetch_model.sh > /dev/null || echo "test.sh: SmolLM2-135M not fetched; its tests will skip"
ctest_rc=0
(cd build && ctest --output-on-failure -j"$(nproc)" --timeout 600) || ctest_rc=$?
pytest_rc=0
if [ -d build/python/lowbit ]; then
  PYTHONPATH="$PWD/build/python${PYTHONPATH:+:$PYTHONPATH}" LOWBIT_CLI="$PWD/build/lowbit" \
    python3 -m pytest -q python/tests || pytest_rc=$?
else
  echo "test.sh: build/python/lowbit missing (pybind11 not found at configure time); pytest suite not run" >&2
  pytest_rc=1
fi
[ "$ctest_rc" -eq 0 ] && [ "$pytest_rc" -eq 0 ]
