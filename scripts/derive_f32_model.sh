#!/usr/bin/env bash
# A high-precision model with the same function as MODEL but off any
# quantization grid: the residual stream rotated by a seeded randomized Hadamard
# matrix (orthogonal; QuaRot's residual rotation without online transforms),
# RMSNorm weights folded into the following linears, the head untied, every
# tensor FP32. Written as OUT.lowbit and exported to OUT.gguf (llama.cpp loads
# it); then its KL divergence to MODEL is measured, which must be ~0.
# SmolLM2-135M ships as Q4_1 (a 4-bit grid in groups of 32): accuracy-per-bit
# tables on the shipped file re-find that grid; on the derived model they do not.
#
# Usage: scripts/derive_f32_model.sh MODEL OUT [SEED]   (OUT without extension)
#   env: LOWBIT_BIN=./build/lowbit  TEXT=../shared/data/wikitext-2-raw/wiki.test.raw  CHUNKS=32
set -euo pipefail
cd "$(dirname "$0")/.."
model="$1"; out="$2"; seed="${3:-20261206}"
lowbit="${LOWBIT_BIN:-./build/lowbit}"
text="${TEXT:-${LOWBIT_SHARED_DIR:-../shared}/data/wikitext-2-raw/wiki.test.raw}"
recipe="$(mktemp --suffix=.json)"
trap 'rm -f "$recipe"' EXIT
cat > "$recipe" <<JSON
{"name": "derived-f32",
 "description": "residual stream rotated by a seeded randomized Hadamard matrix, norms folded, head untied, FP32",
 "rotation": {"seed": $seed, "online_down": false, "rotate_v_heads": false},
 "rules": [{"match": "^(token_embedding|lm_head)\$", "method": "none", "format": "fp32"}],
 "default": {"method": "none", "format": "fp32"}}
JSON
"$lowbit" quantize "$model" --recipe "$recipe" -o "$out.lowbit" --no-progress
"$lowbit" export "$out.lowbit" --to gguf -o "$out.gguf" --exact --force
"$lowbit" ppl "$out.gguf" --text "$text" --ctx 512 --chunks "${CHUNKS:-32}" --base "$model" --no-progress \
  --json "$out.kld.json"
