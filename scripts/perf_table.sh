#!/usr/bin/env bash
# The README's low-bit runtime table: `lowbit bench` on random-weight models of
# the SmolLM2-135M and TinyLlama-1.1B shapes in every runtime format, 2 threads,
# pp512 / tg128, median of R repetitions, with the bandwidth probe of each run.
# Usage: scripts/perf_table.sh LOWBIT OUT_DIR [REPS] [SHAPES...]
# Run it on an idle machine: it prints one markdown row per (shape, recipe) and
# keeps every JSON report in OUT_DIR. ONLY=REGEX (matched against "label|recipe|flags")
# runs a subset of the rows.
set -euo pipefail
B=${1:?lowbit binary}
OUT=${2:?output folder}
REPS=${3:-3}
shift $(( $# >= 3 ? 3 : $# ))
SHAPES=("$@")
[ ${#SHAPES[@]} -eq 0 ] && SHAPES=(smollm2-135m tinyllama-1.1b)
mkdir -p "$OUT"
# label | recipe | extra flags
ROWS=(
  "FP32|fp32|"
  "BF16|bf16|"
  "W8A16 (INT8 per channel)|w8|"
  "W4A16 g128 (INT4 asym)|w4g128-rtn|"
  "W8A8 (INT8 per token)|w8|--act int8"
  "W4A8 g128|w4g128-rtn|--act int8"
  "FP8 E4M3 weights|fp8|"
  "MXFP4|mxfp4|"
  "NVFP4|nvfp4|"
)
echo "| shape | format | pp512 tok/s | tg128 tok/s | GB/s (decode) | roofline | bandwidth GB/s | kernels |"
echo "|---|---|---|---|---|---|---|---|"
for shape in "${SHAPES[@]}"; do
  for row in "${ROWS[@]}"; do
    IFS='|' read -r label recipe extra <<<"$row"
    [[ -n "${ONLY:-}" && ! "$row" =~ ${ONLY} ]] && continue
    tag="${shape}_${recipe}${extra:+_int8}"
    # shellcheck disable=SC2086
    "$B" bench --shape "$shape" --recipe "$recipe" $extra -p 512 -n 128 -t 2 --reps "$REPS" \
      --json "$OUT/$tag.json" >"$OUT/$tag.log" 2>&1 || { echo "| $shape | $label | failed: see $OUT/$tag.log |"; continue; }
    python3 - "$OUT/$tag.json" "$shape" "$label" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"| {sys.argv[2]} | {sys.argv[3]} | {r['pp_tps']:.1f} | {r['tg_tps']:.2f} | {r['achieved_gbs']:.1f} | "
      f"{r['roofline_fraction']:.2f} | {r['bandwidth_gbs']:.1f} | {r['kernels']} |")
PY
  done
done
