#!/usr/bin/env bash
# Runs the kernel and model tests at every ISA level this CPU supports below
# the one scripts/test.sh ran (LOWBIT_ISA=generic, avx2, ...): each level's
# kernels and the models assembled from them. Needs the build of scripts/test.sh
# (build/lowbit, build/lowbit_tests). The levels come from the binary itself:
# the list in its error for an unknown LOWBIT_ISA, each kept when the binary
# accepts it (an unsupported level is an error, exit code 1).
set -euo pipefail
cd "$(dirname "$0")/../build"
levels=$(LOWBIT_ISA=none ./lowbit formats --list 2>&1 >/dev/null | sed -n 's/.*(expected \(.*\))$/\1/p' | sed "s/,\| or / /g" || true)
[ -n "$levels" ] || { echo "test_isa_levels.sh: could not read the ISA levels from build/lowbit" >&2; exit 1; }
# Test suites of the kernels (packed GEMVs, fixed point, integer activations,
# exp rows, streaming, rotations, attention, element kernels, AMX) and of the
# models run on them (golden logits, packed and integer models, KV caches).
suites='PackedKernels|PackedLinear|PackedInt8Activations|PackedStories|PackedSharedInput|Int8Fixed16|Lut4Fixed16'
suites+='|ExpRows|StreamRead|Hadamard|Rotation|KvFusedAttention|ElementKernel|AmxGemm|W8A8|W4A8|W4A4'
suites+='|Int8ActRows|IntegerActStories|IntegerActivations|ModelGolden|RuntimeModel|KvModel|KvNuq'
suites+='|Llama2cFromGguf|HfModelFromGguf|HfModelRandom|Ops|CpuFeatures|GgmlActivations|GgufBlockTypes'
suites+='|LlamaCppArith|LlamaCppLinear|KernelTable|Bf16CalibrationCli|TrellisPacked|TrellisKernels'
# Tests that run every kernel of every level this CPU has by themselves, whatever
# LOWBIT_ISA says (they call each level's kernels directly): scripts/test.sh ran
# them, and again at each level they would repeat the same work (about 8 s of
# each level's 40 on 2 cores).
every_level='W4A4\.SimdKernelsAreBitIdenticalToTheReference|AmxGemm\.W4A8IsBitIdenticalToTheReference'
every_level+='|PackedKernels\.EveryIsaMatchesTheReference'
native=$(./lowbit formats --list >/dev/null 2>&1 && echo ok)
[ "$native" = ok ] || { echo "test_isa_levels.sh: build/lowbit does not run" >&2; exit 1; }
supported=()
for level in $levels; do
  if LOWBIT_ISA=$level ./lowbit formats --list >/dev/null 2>&1; then supported+=("$level"); else
    echo "test_isa_levels.sh: $level: not supported here, skipped"; fi
done
# The levels are ordered, each including the previous (avxvnni, a side branch, is
# skipped where the CPU lacks AVX-VNNI: cpu_features.h), so the last supported one
# is what runs without LOWBIT_ISA: scripts/test.sh ran the whole suite there.
[ ${#supported[@]} -gt 0 ] || { echo "test_isa_levels.sh: build/lowbit accepts no ISA level" >&2; exit 1; }
echo "test_isa_levels.sh: native level ${supported[-1]} (run by scripts/test.sh)"
failed=()
for level in "${supported[@]:0:${#supported[@]}-1}"; do
  start=$(date +%s)
  rc=0
  LOWBIT_ISA=$level ctest -R "(^|/)($suites)\\." -E "^($every_level)\$" -j"$(nproc)" --timeout 600 --output-on-failure > "isa_$level.log" 2>&1 || rc=$?
  echo "test_isa_levels.sh: LOWBIT_ISA=$level: $(grep -E 'tests passed|tests failed' "isa_$level.log" | tail -1) ($(( $(date +%s) - start )) s)"
  [ "$rc" -eq 0 ] || { failed+=("$level"); tail -40 "isa_$level.log"; }
done
[ ${#failed[@]} -eq 0 ] || { echo "test_isa_levels.sh: failed at ${failed[*]}" >&2; exit 1; }
