#!/usr/bin/env bash
# Activation-quantization table (README, issue 5): quantizes a model with each
# recipe (calibration data only for recipes that need it, as `--list-recipes`
# says), evaluates it against the original on WikiText-2 (gptq protocol) and
# prints a markdown table with weight and activation bits from the JSON reports.
# Usage: scripts/act_table.sh MODEL OUTDIR [CTX] [CHUNKS] [CALIB_SAMPLES] [CALIB_LEN] RECIPES...
set -euo pipefail
cd "$(dirname "$0")/.."
model="$1"; out="$2"; ctx="${3:-2048}"; chunks="${4:-4}"; samples="${5:-16}"; len="${6:-512}"
shift $(( $# < 6 ? $# : 6 ))
shared="${LOWBIT_SHARED_DIR:-../shared}"
text="$shared/data/wikitext-2-raw/wiki.test.raw"
calib="$shared/data/c4/c4_validation_2k.jsonl"
lowbit="${LOWBIT_BIN:-./build/lowbit}"
mkdir -p "$out"
"$lowbit" quantize --list-recipes > "$out/recipes.txt"
for r in "$@"; do
  needs=$(awk -v r="$r" '$1 == r { print $6 }' "$out/recipes.txt")
  calib_flags=()
  [ "$needs" = "yes" ] && calib_flags=(--calib "$calib" --calib-samples "$samples" --calib-len "$len")
  "$lowbit" quantize "$model" --recipe "$r" "${calib_flags[@]}" --seed 1 --threads 2 -o "$out/$r.lowbit" \
    --json "$out/$r.quant.json" > "$out/$r.quant.log" 2>&1
  "$lowbit" ppl "$out/$r.lowbit" --text "$text" --ctx "$ctx" --protocol gptq --chunks "$chunks" --threads 2 \
    --no-progress --base "$model" --json "$out/$r.ppl.json" > /dev/null
done
python3 - "$out" "$@" <<'PY'
import json, os, sys
out, recipes = sys.argv[1], sys.argv[2:]
act = {f[0]: f[4] for f in (l.split() for l in open(os.path.join(out, "recipes.txt"))) if len(f) > 6}
print("| recipe | W bits | A bits | PPL | KLD vs FP32 | same top-1 | quantize s |")
print("|---|---|---|---|---|---|---|")
for r in recipes:
    q = json.load(open(os.path.join(out, r + ".quant.json")))
    p = json.load(open(os.path.join(out, r + ".ppl.json")))
    print(f"| {r} | {q['linear_bits_per_weight']:.2f} | {act.get(r, '?')} | {p['ppl']:.2f} ± {p['ppl_stderr']:.2f} | "
          f"{p['kld_mean']:.4f} ± {p['kld_stderr']:.4f} | {100*p['top1_agree']:.1f}% | {q['seconds']:.0f} |")
PY
