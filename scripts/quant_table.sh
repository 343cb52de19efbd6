#!/usr/bin/env bash
# Quantizes a model with each recipe and evaluates it against the original on
# WikiText-2 (gptq protocol), then prints a markdown table from the JSON reports.
# Usage: scripts/quant_table.sh MODEL OUTDIR [CTX] [CHUNKS] [CALIB_SAMPLES] [CALIB_LEN] [RECIPES...]
set -euo pipefail
cd "$(dirname "$0")/.."
model="$1"; out="$2"; ctx="${3:-2048}"; chunks="${4:-8}"; samples="${5:-32}"; len="${6:-512}"
shift $(( $# < 6 ? $# : 6 ))
recipes=("$@")
if [ ${#recipes[@]} -eq 0 ]; then
  recipes=(w4g128-rtn w4g128-gptq w4g128-awq w4g128-easyquant w3g128-rtn w3g128-gptq w3g128-gptq-lorc nvfp4 mxfp4)
fi
shared="${LOWBIT_SHARED_DIR:-../shared}"
text="$shared/data/wikitext-2-raw/wiki.test.raw"
calib="$shared/data/c4/c4_validation_2k.jsonl"
lowbit="${LOWBIT_BIN:-./build/lowbit}"
mkdir -p "$out"
"$lowbit" ppl "$model" --text "$text" --ctx "$ctx" --protocol gptq --chunks "$chunks" --threads 2 --no-progress \
  --json "$out/fp32.ppl.json" > /dev/null
for r in "${recipes[@]}"; do
  "$lowbit" quantize "$model" --recipe "$r" --calib "$calib" --calib-samples "$samples" --calib-len "$len" \
    --seed 1 --threads 2 -o "$out/$r.lowbit" --json "$out/$r.quant.json" > "$out/$r.quant.log" 2>&1
  "$lowbit" ppl "$out/$r.lowbit" --text "$text" --ctx "$ctx" --protocol gptq --chunks "$chunks" --threads 2 \
    --no-progress --base "$model" --json "$out/$r.ppl.json" > /dev/null
done
python3 - "$out" "${recipes[@]}" <<'PY'
import json, os, sys
out, recipes = sys.argv[1], sys.argv[2:]
base = json.load(open(os.path.join(out, "fp32.ppl.json")))
print("| recipe | bits/weight (linears) | file MB | PPL | KLD | same top-1 | quantize s | peak RSS MB (bound) |")
print("|---|---|---|---|---|---|---|---|")
print(f"| fp32 (base) | 32 | - | {base['ppl']:.3f} ± {base['ppl_stderr']:.3f} | 0 | 100% | - | - |")
for r in recipes:
    q = json.load(open(os.path.join(out, r + ".quant.json")))
    p = json.load(open(os.path.join(out, r + ".ppl.json")))
    size = os.path.getsize(os.path.join(out, r + ".lowbit")) / 1e6
    print(f"| {r} | {q['linear_bits_per_weight']:.3f} | {size:.1f} | {p['ppl']:.3f} ± {p['ppl_stderr']:.3f} | "
          f"{p['kld_mean']:.4f} ± {p['kld_stderr']:.4f} | {100*p['top1_agree']:.1f}% | "
          f"{q['seconds']:.1f} | {q['peak_rss_bytes']/1e6:.0f} ({q['memory_bound_bytes']/1e6:.0f}) |")
PY
