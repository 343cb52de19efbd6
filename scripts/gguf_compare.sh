#!/usr/bin/env bash
# lowbit's GGUF files against llama.cpp's own at equal per-tensor types, on one
# model, on the same tokens (docs/RESULTS.md, "GGUF export").
#
# For each llama.cpp type mix T (default Q4_0 Q4_K_M): llama-quantize with an
# imatrix from CALIB makes llama.cpp's file; scripts/recipe_from_gguf.py turns
# its per-tensor types into a lowbit recipe; lowbit quantizes (GPTQ, and AWQ /
# RTN with METHODS) with calibration windows from the same CALIB and exports to
# GGUF. Every file is then scored by `lowbit ppl --base BASE` (KLD to the base on
# WikiText-2 test, llamacpp protocol) and the table printed.
#
# Usage: LLAMA_CPP_BIN=/path/to/llama.cpp/build/bin scripts/gguf_compare.sh BASE.gguf CALIB.txt OUTDIR
#   env: TYPES="Q4_0 Q4_K_M"  METHODS="gptq"  CTX=512  CHUNKS=32  CALIB_CHUNKS=64  THREADS=2
#        LOWBIT_BIN=./build/lowbit  TEXT=../shared/data/wikitext-2-raw/wiki.test.raw
set -euo pipefail
cd "$(dirname "$0")/.."
base="$1"; calib="$2"; out="$3"
bin="${LLAMA_CPP_BIN:?set LLAMA_CPP_BIN to a llama.cpp build/bin folder}"
lowbit="${LOWBIT_BIN:-./build/lowbit}"
text="${TEXT:-${LOWBIT_SHARED_DIR:-../shared}/data/wikitext-2-raw/wiki.test.raw}"
types="${TYPES:-Q4_0 Q4_K_M}"; methods="${METHODS:-gptq}"
ctx="${CTX:-512}"; chunks="${CHUNKS:-32}"; calib_chunks="${CALIB_CHUNKS:-64}"; threads="${THREADS:-2}"
mkdir -p "$out"
export OMP_WAIT_POLICY=PASSIVE  # llama.cpp's OpenMP threads otherwise spin against each other on a busy machine

if [ ! -f "$out/imatrix.gguf" ]; then
  "$bin/llama-imatrix" -m "$base" -f "$calib" -o "$out/imatrix.gguf" -c "$ctx" --chunks "$calib_chunks" \
    -t "$threads" > "$out/imatrix.log" 2>&1
fi
score() {  # score NAME FILE
  "$lowbit" ppl "$2" --text "$text" --ctx "$ctx" --chunks "$chunks" --base "$base" -t "$threads" --no-progress \
    --json "$out/$1.ppl.json" > "$out/$1.ppl.log" 2>&1
}
rows=()
for t in $types; do
  ll="$out/llama_$t.gguf"
  [ -f "$ll" ] || "$bin/llama-quantize" --imatrix "$out/imatrix.gguf" "$base" "$ll" "$t" "$threads" \
    > "$out/llama_$t.quantize.log" 2>&1
  score "llama_$t" "$ll"; rows+=("llama_$t")
  for m in $methods; do
    name="lowbit_${t}_$m"
    python3 scripts/recipe_from_gguf.py "$ll" "$out/$name.recipe.json" --method "$m" --name "$name" > /dev/null
    "$lowbit" quantize "$base" --recipe "$out/$name.recipe.json" --calib "$calib" --calib-samples "$calib_chunks" \
      --calib-len "$ctx" --seed 1 -t "$threads" -o "$out/$name.lowbit" --no-progress \
      --json "$out/$name.quant.json" > "$out/$name.quant.log" 2>&1
    "$lowbit" export "$out/$name.lowbit" --to gguf -o "$out/$name.gguf" --exact --force > "$out/$name.export.log" 2>&1
    score "$name" "$out/$name.gguf"; rows+=("$name")
  done
done
python3 - "$out" "${rows[@]}" <<'PY'
import json, os, sys
out, rows = sys.argv[1], sys.argv[2:]
print("| file | MB | PPL | mean KLD | same top-1 | KLD / llama.cpp's |")
print("|---|---|---|---|---|---|")
ref = {}
for r in rows:
    p = json.load(open(os.path.join(out, r + ".ppl.json")))
    t = r.split("_", 1)[1].rsplit("_", 1)[0] if r.startswith("lowbit_") else r.split("_", 1)[1]
    if r.startswith("llama_"):
        ref[t] = p["kld_mean"]
    ratio = p["kld_mean"] / ref[t] if t in ref and ref[t] > 0 else float("nan")
    mb = os.path.getsize(os.path.join(out, r + ".gguf")) / 1e6
    print(f"| {r} | {mb:.1f} | {p['ppl']:.3f} ± {p['ppl_stderr']:.3f} | {p['kld_mean']:.4f} ± {p['kld_stderr']:.4f} | "
          f"{100 * p['top1_agree']:.1f}% | {ratio:.3f} |")
PY
