#!/usr/bin/env bash
# Installs lowbit's build and test dependencies: Debian's packages, then the
# Python packages the tests read files with (gguf-py, pinned: the GGUF export
# check compares its dequantization with lowbit's bit for bit).
# Skips apt and pip where everything is already present.
set -euo pipefail
packages=(g++ cmake make pkg-config git python3 python3-pip python3-numpy unzip
          libopenblas-dev nlohmann-json3-dev libcli11-dev libfmt-dev libpcre2-dev
          libsentencepiece-dev libgtest-dev libbenchmark-dev
          gnuplot-nox)  # gnuplot-nox: lowbit inspect --plot; python3-numpy: tests/python/ct_reader.py
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
