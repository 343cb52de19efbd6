#!/usr/bin/env bash
# Installs lowbit's build and test dependencies from Debian's packages.
# Skips apt entirely when everything is already present.
set -euo pipefail
packages=(g++ cmake make pkg-config git python3 python3-pip python3-numpy unzip
          libopenblas-dev nlohmann-json3-dev libcli11-dev libfmt-dev libpcre2-dev
          libsentencepiece-dev libgtest-dev libbenchmark-dev
          gnuplot-nox)  # gnuplot-nox: lowbit inspect --plot; python3-numpy: tests/python/ct_reader.py
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all packages present"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install_deps: installing ${missing[*]}"
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
