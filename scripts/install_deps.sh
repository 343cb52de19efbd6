#!/usr/bin/env bash
# Installs lowbit's build and test dependencies from Debian's packages.
# Skips apt entirely when everything is already present.
set -euo pipefail
packages=(g++ cmake make pkg-config git python3 python3-pip unzip
          libopenblas-dev nlohmann-json3-dev libcli11-dev libfmt-dev libpcre2-dev
          libsentencepiece-dev libgtest-dev libbenchmark-dev
          gnuplot-nox)  # gnuplot-nox: lowbit inspect --plot
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all packages present"
else
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "install_deps: installing ${missing[*]}"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi
# gguf-py (llama.cpp's numpy reference) and numpy: the GGUF checks in tests/python,
# which the C++ suite runs where they import. Debian's python is externally
# managed (PEP 668), hence the fallback.
if ! python3 -c "import gguf, numpy" 2>/dev/null; then
  echo "install_deps: pip install gguf numpy"
  python3 -m pip install --quiet gguf numpy 2>/dev/null ||
    python3 -m pip install --quiet --break-system-packages gguf numpy
fi
