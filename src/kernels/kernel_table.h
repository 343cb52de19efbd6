// The one table of linear-layer kernels (issue 14): every way the runtime
// multiplies a packed weight (packed_matrix.h) by activations, keyed by
//   weight layout x activation format x ISA level,
// each entry giving its name (the only place a kernel's name is written), the
// activation preparation, the decode kernel, the prompt kernel and the token
// count from which it is used, the scalar reference and the error bound.
//
// The entries are built from the per-ISA op sets that the kernel translation
// units export (packed_kernels_lut4_avx2(), w8a8_kernels_avx512vnni(), ...), one
// line each in kernel_table.cpp. A layer asks find_linear_kernel once, when it
// is built (model/packed_linear.h), for the best entry at or below its ISA level
// that accepts its weight on this CPU; it keeps that entry and calls only its
// pointers, and every label printed (--verbose, bench, JSON) is the entry's name.
//
// Adding a kernel: write its TU exporting an op set, add one row to the table in
// kernel_table.cpp at its (layout, activation, ISA level); the test
// (tests/test_kernel_table.cpp) then runs it against its reference at every
// level this CPU supports. Adding an ISA level: a value of Isa in cpu_features.h
// (ordered: a level includes the ones below it) and rows at that level; levels
// without a row of their own run the best row below them.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/amx_gemm.h"
#include "kernels/cpu_features.h"
#include "kernels/packed_matrix.h"
#include "kernels/w4a4.h"
#include "kernels/w4a8.h"
#include "kernels/w8a8.h"

namespace lowbit {

// Weight layouts as the kernels see them: PackedKind, with FP16 and BF16 one
// layout (the same kernels), and 4-bit groups whose table is the integer code
// (w4a8_supported: UINT4 with a minimum, two's-complement INT4) a layout of
// their own for integer activations (they are also kLut4 for FP32 ones).
enum class WeightLayout { kLut4, kLut4Integer, kInt8Row, kFp8Row, kHalf, kBits, kTrellis, kPtq161 };
const char* weight_layout_name(WeightLayout layout);
// Whether w has the layout (an integer 4-bit matrix has two: kLut4 and kLut4Integer).
bool weight_has_layout(const PackedMatrix& w, WeightLayout layout);

// The activations a kernel multiplies. Per token, per tensor static (a calibrated
// threshold) and per group (INT4) are rules of the same kernels' preparation
// (w8a8.h IntActRule, Int4Activations::group), carried by the layer, not keys.
enum class ActFormat {
  kFp32,  // FP32 (the GEMVs may read a 16-bit fixed-point copy they prepare)
  kInt8,  // INT8 per token or per tensor static (w8a8.h)
  kInt4,  // INT4 per token, per tensor static or per group (w4a4.h)
};
const char* act_format_name(ActFormat act);

// Kernels of one entry; which members are set depends on (layout, act), as listed.
struct LinearKernel {
  const char* name = "";  // "lut4/avx2", "w8a8/amx+avx512vnni"; unique in the table
  WeightLayout layout = WeightLayout::kLut4;
  ActFormat act = ActFormat::kFp32;
  Isa isa = Isa::kGeneric;  // the lowest level the entry runs at
  // Extra condition on the weight or the CPU (GFNI, AMX's tile layout); null: none.
  bool (*accepts)(const PackedMatrix& w, const CpuFeatures& cpu) = nullptr;
  // Calls of n tokens with n >= gemm_min_tokens run the prompt path below, others
  // the decode path; 0: there is no separate prompt path.
  int64_t gemm_min_tokens = 0;
  // Whether every result equals the reference's bits (integer dot products summed
  // in the same float order); else `bound` gives the allowed difference.
  bool exact = false;

  // kFp32 (packed_matrix.h): activation preparation (prepare_activation with
  // fp.prepare_fixed16), decode = fp.gemv per token, prompt = fp.dequantize_rows
  // per tile of rows, then sgemm.
  PackedKernels fp;
  // |kernel - reference| for row r, from the prepared activation (FP32 rounding,
  // plus the 16-bit quantization of x where a.fixed is valid).
  double (*fp_bound)(const PackedMatrix& w, const PackedActivation& a, int64_t r) = nullptr;
  // The reference in double on the FP32 x (a.x): gemv_packed_reference.
  void (*fp_reference)(const PackedMatrix& w, const float* x, int64_t r0, int64_t r1, float* y) = nullptr;

  // kInt8: preparation = quantize_rows (per token, clip 1: the SIMD quantizer;
  // other rules run quantize_rows_int8_rule, the same codes) and, W4A8,
  // group_sums; decode = w8a8 (kInt8Row) or w4a8 (kLut4Integer); prompt (AMX)
  // = amx_w8a8 / amx_w4a8 on the AMX copy of the activations.
  QuantizeRowsFn quantize_rows = nullptr;
  GroupSumsFn group_sums = nullptr;
  W8A8Kernels w8a8;
  W4A8Fn w4a8 = nullptr;
  void (*amx_w8a8)(const PackedMatrix& w, const AmxActivations& x, int64_t r0, int64_t r1, float* y,
                   int64_t ldy) = nullptr;
  void (*amx_w4a8)(const PackedMatrix& w, const AmxActivations& x, const std::vector<int32_t>& qsum, int64_t r0,
                   int64_t r1, float* y, int64_t ldy) = nullptr;
  // The exact references (int64 sums): w8a8_reference (kInt8Row) / w4a8_reference.
  decltype(W8A8Kernels::gemm) w8a8_reference = nullptr;
  W4A8Fn w4a8_reference = nullptr;

  // kInt4 (kLut4Integer): preparation = quantize_activations_int4 and
  // w4a4_block_sums; decode and prompt = w4a4.
  W4A4Fn w4a4 = nullptr;
  W4A4Fn w4a4_reference = nullptr;  // exact (int64 dots)
};

// Every entry, built once (immutable; the order is the table's).
std::span<const LinearKernel> linear_kernels();

// The entry for w and act at `isa`: the highest-level one at or below isa whose
// layout w has and which accepts w on this CPU; null when none does (the layout
// has no kernel for these activations).
const LinearKernel* find_linear_kernel(const PackedMatrix& w, ActFormat act, Isa isa);
// The entry of that name, null when none.
const LinearKernel* find_linear_kernel(const char* name);

}  // namespace lowbit
