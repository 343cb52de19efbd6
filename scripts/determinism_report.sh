#!/usr/bin/env bash
# How far `lowbit ppl` logits move between settings, default forward vs --deterministic
# (docs/EVALUATION.md, "Reproducible evaluation").
#
#   scripts/determinism_report.sh BIN MODEL TEXT OUTDIR [CHUNKS] [CTX] [SETTINGS]
#
# For each mode (default, deterministic) the reference setting (the whole chunk per
# forward call, 2 threads, the CPU's best ISA level) records its scored logits with
# --save-logits; every other setting runs the same ppl with --compare-logits and
# reports max |delta logit|, mean / max KLD(reference || setting), flipped argmax and
# bit-identical positions. A last row compares the deterministic reference with the
# default one. SETTINGS (space-separated, default "t1 t3 b64 b7 avx2 generic"):
#   tN       N threads;      bN   N tokens per forward call (--batch N);
#   avx2     LOWBIT_ISA=avx2 and OPENBLAS_CORETYPE=Haswell (OpenBLAS's AVX2 kernels too);
#   generic  LOWBIT_ISA=generic and OPENBLAS_CORETYPE=Prescott (SSE3 kernels).
# The logit records (4 bytes × vocab × scored positions each) stay in OUTDIR.
# MODES="deterministic" (environment) reruns one mode and reuses the other's files in OUTDIR.
set -euo pipefail
if [ $# -lt 4 ]; then
  sed -n '2,18p' "$0"
  exit 1
fi
BIN=$1 MODEL=$2 TEXT=$3 OUT=$4
CHUNKS=${5:-4} CTX=${6:-512}
SETTINGS=${7:-"t1 t3 b64 b7 avx2 generic"}
MODES=${MODES:-"default deterministic"}
mkdir -p "$OUT"

# run MODE SETTING EXTRA...: one ppl with the setting's flags and environment.
run() {
  local mode=$1 setting=$2
  shift 2
  local threads=2 batch=0 env=()
  case $setting in
    ref | vsdefault) ;;
    t*) threads=${setting#t} ;;
    b*) batch=${setting#b} ;;
    avx2) env=(LOWBIT_ISA=avx2 OPENBLAS_CORETYPE=Haswell) ;;
    generic) env=(LOWBIT_ISA=generic OPENBLAS_CORETYPE=Prescott) ;;
    *) echo "unknown setting $setting" >&2; exit 1 ;;
  esac
  local det=()
  [ "$mode" = deterministic ] && det=(--deterministic)
  env "${env[@]}" "$BIN" ppl "$MODEL" --text "$TEXT" --ctx "$CTX" --chunks "$CHUNKS" --batch "$batch" \
    --threads "$threads" "${det[@]}" --json "$OUT/${mode}_${setting}.json" "$@" > "$OUT/${mode}_${setting}.log"
}

for mode in $MODES; do
  echo "== $mode: ref" >&2
  run "$mode" ref --save-logits "$OUT/${mode}_ref.logits"
  for s in $SETTINGS; do
    echo "== $mode: $s" >&2
    run "$mode" "$s" --compare-logits "$OUT/${mode}_ref.logits"
  done
done
echo "== deterministic ref vs default ref" >&2
run deterministic vsdefault --compare-logits "$OUT/default_ref.logits"

printf '| mode | setting | PPL | seconds | positions | bit-identical | max abs dlogit | KLD mean | KLD max | flipped argmax |\n'
printf '|---|---|---|---|---|---|---|---|---|---|\n'
row() {
  local mode=$1 setting=$2 json=$3
  jq -r --arg m "$mode" --arg s "$setting" \
    '"| \($m) | \($s) | \(.ppl|tostring|.[0:8]) | \(.seconds // 0|floor) | " +
     (if .compare_logits then "\(.compare_logits.positions) | \(.compare_logits.identical_positions) | \(.compare_logits.max_abs_delta_logit) | \(.compare_logits.kld_mean) | \(.compare_logits.kld_max) | \(.compare_logits.flipped_argmax) |"
      else "(reference) | | | | | |" end)' "$json"
}
for mode in default deterministic; do
  row "$mode" ref "$OUT/${mode}_ref.json"
  for s in $SETTINGS; do row "$mode" "$s" "$OUT/${mode}_${s}.json"; done
done
row "deterministic vs default" ref "$OUT/deterministic_vsdefault.json"
