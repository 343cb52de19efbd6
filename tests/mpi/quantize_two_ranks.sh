#!/usr/bin/env bash
# `mpirun -np 2 lowbit quantize` (GPTQ on stories260K, 8 c4 windows of 64 tokens)
# against one process given --calib-shards 2, which sums the statistics in the same
# two shards and order: the two files must be identical byte for byte, and rank 1
# must leave nothing in the output folder (docs/MPI.md).
# Usage: quantize_two_ranks.sh LOWBIT MPIEXEC SHARED_DIR WORK_DIR (exit 77: skipped)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
lowbit=$1
mpiexec=$2
shared=${LOWBIT_SHARED_DIR:-$3}
work=$4
model=$shared/models/stories260K/stories260K.gguf
calib=$shared/data/c4/c4_validation_2k.jsonl
if [ ! -f "$model" ] || [ ! -f "$calib" ]; then
  echo "SKIP: shared test material absent ($model, $calib); set LOWBIT_SHARED_DIR"
  exit 77
fi
rm -rf "$work"
mkdir -p "$work/np2" "$work/one"
args=(quantize "$model" -r w4g128-gptq --calib "$calib" --calib-samples 8 --calib-len 64 -t 1 --quiet)
"$here/mpirun.sh" "$mpiexec" 2 "$lowbit" "${args[@]}" -o "$work/np2/A.lowbit" --json "$work/np2/A.json"
"$lowbit" "${args[@]}" --calib-shards 2 -o "$work/one/B.lowbit" --json "$work/one/B.json"
listing=$(cd "$work/np2" && ls -A)
if [ "$listing" != $'A.json\nA.lowbit' ]; then
  echo "FAIL: the MPI run's output folder holds: $listing (expected A.json and A.lowbit only)"
  exit 1
fi
grep -q '"mpi_ranks": 2' "$work/np2/A.json" || { echo "FAIL: the report does not say 2 ranks ran"; exit 1; }
if ! cmp "$work/np2/A.lowbit" "$work/one/B.lowbit"; then
  echo "FAIL: mpirun -np 2 and one process with --calib-shards 2 wrote different files"
  exit 1
fi
# The reports' output errors ‖XWᵀ − XŴᵀ‖²/‖XWᵀ‖² are computed with H: equal to the last bit only
# when H is (the stored weights alone may not show a rounding difference in H on so small a model).
python3 - "$work/np2/A.json" "$work/one/B.json" <<'PY'
import json, sys
a, b = (json.load(open(p))["modules"] for p in sys.argv[1:])
strip = lambda ms: [{k: v for k, v in m.items() if k != "seconds"} for m in ms]
if strip(a) != strip(b):
    bad = [x["name"] for x, y in zip(strip(a), strip(b)) if x != y]
    sys.exit(f"FAIL: the reports' modules differ (errors computed with H): {bad[:5]}")
PY
echo "OK: mpirun -np 2 and --calib-shards 2 wrote identical files ($(stat -c %s "$work/np2/A.lowbit") bytes)"
