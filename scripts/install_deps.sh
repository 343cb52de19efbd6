#!/usr/bin/env bash
# Installs lowbit's build and test dependencies: Debian's packages, then the
# Python packages the tests read files with (gguf-py, pinned: the GGUF export
# check compares its dequantization with lowbit's bit for bit), and those of the
# Python package and its pytest suite (pybind11, scikit-build-core, pytest,
# ml_dtypes, pinned).
# Skips apt and pip where everything is already present.
set -euo pipefail
packages=(g++ cmake make pkg-config git python3 python3-pip python3-numpy unzip
          libopenblas-dev nlohmann-json3-dev libcli11-dev libfmt-dev libpcre2-dev
          libsentencepiece-dev libgtest-dev libbenchmark-dev
          gnuplot-nox libopenmpi-dev openmpi-bin clang libclang-rt-dev)
# gnuplot-nox: lowbit inspect --plot; python3-numpy: tests/python/ct_reader.py;
# libopenmpi-dev, openmpi-bin: `mpirun -np N lowbit quantize` and its test (docs/MPI.md);
# clang, libclang-rt-dev: clang's ASan/UBSan and libFuzzer runtimes (scripts/fuzz.sh, scripts/sanitize_tests.sh)
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all packages present"
else
  echo "install_deps: installing ${missing[*]}"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi

# Python: gguf-py (llama.cpp's numpy reference, pinned) with numpy, for the GGUF
# checks in tests/python (test_gguf_blocks_py.py, check_gguf_export.py) that the C++ suite runs.
gguf_version="0.19.0"
have=$(python3 -c 'import numpy, importlib.metadata as m; print(m.version("gguf"))' 2>/dev/null || true)
if [ "$have" = "$gguf_version" ]; then
  echo "install_deps: gguf $gguf_version present"
else
  echo "install_deps: pip installing gguf==$gguf_version"
  # Debian's python3 is externally managed (PEP 668): a user install needs the override there.
  python3 -m pip install --quiet --user "gguf==$gguf_version" numpy 2>/dev/null ||
    python3 -m pip install --quiet --user --break-system-packages "gguf==$gguf_version" numpy
fi

# The Python package (pyproject.toml, src/python) and its suite (python/tests):
# pybind11 lets scripts/build.sh build the module into build/python; ml_dtypes is
# the suite's independent oracle for the FP8/FP6/FP4/E8M0/BF16 codecs.
py_pins=("pybind11==2.13.6" "scikit-build-core==0.11.6" "pytest==8.4.2" "ml_dtypes==0.5.4")
have_py=$(python3 - "${py_pins[@]}" <<'PY' 2>/dev/null || true
import importlib.metadata as m, sys
print(all(m.version(p.split("==")[0]) == p.split("==")[1] for p in sys.argv[1:]))
PY
)
if [ "$have_py" = "True" ]; then
  echo "install_deps: ${py_pins[*]} present"
else
  echo "install_deps: pip installing ${py_pins[*]}"
  python3 -m pip install --quiet --user "${py_pins[@]}" 2>/dev/null ||
    python3 -m pip install --quiet --user --break-system-packages "${py_pins[@]}"
fi
