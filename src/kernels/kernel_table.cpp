// The linear-kernel table (kernel_table.h): its rows and the lookup.
#include "kernels/kernel_table.h"

#include <cstring>

#include "kernels/int8_fixed16.h"
#include "kernels/lut4_fixed16.h"
#include "kernels/trellis_kernels.h"

namespace lowbit {
namespace {

// From this many tokens on, FP32-activation layers dequantize tiles for sgemm
// instead of running the GEMV per token (the GEMV reads the weight once per
// token; sgemm amortises a tile over the tokens).
constexpr int64_t kFpGemmMinTokens = 4;
// Integer activations: from this many tokens on, the AMX tile GEMM beats the
// VNNI kernels (2048 x 2048, one thread: W8A8 at 8 tokens 0.57 vs 0.70 ms, at 4
// tokens 0.77 vs 0.27 ms; W4A8, whose VNNI kernel is not tiled over tokens, at 4
// tokens 0.87 vs 1.58 ms).
constexpr int64_t kAmxMinTokensW8A8 = 8;
constexpr int64_t kAmxMinTokensW4A8 = 4;

// The FP32 kernels' bound (packed_matrix.h, packed_gemv_bound).
double float_bound(const PackedMatrix& w, const PackedActivation& a, int64_t r) {
  return packed_gemv_bound(w, a.x.data(), r);
}

// Fixed-point GEMVs (lut4_fixed16.h, int8_fixed16.h): where x took the 16-bit
// form, its quantization error plus the kernel's rounding; else they ran FP32.
double fixed16_bound(const PackedMatrix& w, const PackedActivation& a, int64_t r) {
  if (!a.fixed.valid) return float_bound(w, a, r);
  const double rounding = w.kind == PackedKind::kInt8Row   ? int8_fixed16_rounding_bound(w, a, r)
                          : w.kind == PackedKind::kTrellis ? trellis_fixed16_rounding_bound(w, a, r)
                                                           : lut4_fixed16_rounding_bound(w, a, r);
  return rounding + fixed16_quantization_bound(w, a, r);
}

// kPtq161: the prepared x is in packed order; the bound (packed_gemv_bound) reads it by column.
double ptq161_bound(const PackedMatrix& w, const PackedActivation& a, int64_t r) {
  std::vector<float> x(static_cast<size_t>(w.cols));  // [cols] original order
  for (int64_t c = 0; c < w.cols; ++c) x[c] = a.x[w.col_pos[c]];
  return packed_gemv_bound(w, x.data(), r);
}

#ifdef LOWBIT_ARCH_X86
bool cpu_has_gfni(const PackedMatrix&, const CpuFeatures& cpu) { return cpu.gfni; }
// tcq/avx512vnni+vbmi+gfni: vpermb / vpmultishiftqb (VBMI) and vgf2p8affineqb (GFNI).
bool cpu_has_vbmi_gfni(const PackedMatrix&, const CpuFeatures& cpu) { return cpu.avx512vbmi && cpu.gfni; }
// Rows of level avxvnni: the avx512 levels do not include it (cpu_features.h), so the row checks the CPU.
bool cpu_has_avx_vnni(const PackedMatrix&, const CpuFeatures& cpu) { return cpu.avx_vnni; }
// lut4/avx2+fixed16 takes tables whose bytes stay <= 63 (INT4, FP4); others (NF4, wide tables) run lut4/avx2.
bool lut4_avx2_fixed16_table(const PackedMatrix& w, const CpuFeatures&) { return lut4_fixed16_avx2_eligible(w); }
// The same kernel with AVX-VNNI byte products: the same tables, and the CPU feature (avxvnni is not
// included in the avx512 levels, cpu_features.h).
bool lut4_avxvnni_fixed16_table(const PackedMatrix& w, const CpuFeatures& cpu) {
  return cpu.avx_vnni && lut4_fixed16_avx2_eligible(w);
}
bool amx_w4a8_layout(const PackedMatrix& w, const CpuFeatures&) { return w4a8_amx_supported(w); }
#endif

using Accepts = bool (*)(const PackedMatrix&, const CpuFeatures&);

// The key of a row; the integer rows are exact.
LinearKernel row(const char* name, WeightLayout layout, ActFormat act, Isa isa) {
  LinearKernel k;
  k.name = name;
  k.layout = layout;
  k.act = act;
  k.isa = isa;
  k.exact = act != ActFormat::kFp32;
  return k;
}

LinearKernel fp_row(const char* name, WeightLayout layout, PackedKernels ops, Accepts accepts = nullptr) {
  LinearKernel k = row(name, layout, ActFormat::kFp32, ops.isa);
  k.accepts = accepts;
  k.gemm_min_tokens = kFpGemmMinTokens;
  k.fp = ops;
  k.fp_bound = ops.prepare_fixed16 != nullptr ? fixed16_bound : float_bound;
  k.fp_reference = gemv_packed_reference;
  return k;
}

LinearKernel ptq161_row(const char* name, PackedKernels ops) {
  LinearKernel k = fp_row(name, WeightLayout::kPtq161, ops);
  k.fp_bound = ptq161_bound;
  return k;
}

// W8A8 (w8a8.h); amx: the AMX prompt GEMM from kAmxMinTokensW8A8 tokens on.
LinearKernel w8a8_row(const char* name, Isa isa, W8A8Kernels ops, QuantizeRowsFn quantize, bool amx = false,
                      bool (*accepts)(const PackedMatrix&, const CpuFeatures&) = nullptr) {
  LinearKernel k = row(name, WeightLayout::kInt8Row, ActFormat::kInt8, isa);
  k.accepts = accepts;
  k.quantize_rows = quantize;
  k.w8a8 = ops;
  k.w8a8_reference = w8a8_reference;
#ifdef LOWBIT_ARCH_X86
  if (amx) k.amx_w8a8 = w8a8_amx, k.gemm_min_tokens = kAmxMinTokensW8A8;
#endif
  return k;
}

// W4A8 (w4a8.h); amx as above, for the weights w4a8_amx_supported takes.
LinearKernel w4a8_row(const char* name, Isa isa, W4A8Fn gemm, GroupSumsFn sums, QuantizeRowsFn quantize,
                      bool amx = false, Accepts accepts = nullptr) {
  LinearKernel k = row(name, WeightLayout::kLut4Integer, ActFormat::kInt8, isa);
  k.quantize_rows = quantize;
  k.group_sums = sums;
  k.w4a8 = gemm;
  k.w4a8_reference = w4a8_reference;
  k.accepts = accepts;
#ifdef LOWBIT_ARCH_X86
  if (amx) k.amx_w4a8 = w4a8_amx, k.accepts = amx_w4a8_layout, k.gemm_min_tokens = kAmxMinTokensW4A8;
#endif
  return k;
}

// W4A4 (w4a4.h).
LinearKernel w4a4_row(const char* name, Isa isa, W4A4Fn gemm) {
  LinearKernel k = row(name, WeightLayout::kLut4Integer, ActFormat::kInt4, isa);
  k.w4a4 = gemm;
  k.w4a4_reference = w4a4_reference;
  return k;
}

using L = WeightLayout;

// The portable rows: every layout's reference kernels, at every level of both families.
std::vector<LinearKernel> generic_rows() {
  const QuantizeRowsFn q_gen = quantize_rows_int8_generic;
  const GroupSumsFn s_gen = group_activation_sums_rows;
  return {
      fp_row("lut4/generic", L::kLut4, packed_kernels_lut4_generic()),
      fp_row("int8/generic", L::kInt8Row, packed_kernels_int8_generic()),
      fp_row("fp8/generic", L::kFp8Row, packed_kernels_fp8_generic()),
      fp_row("half/generic", L::kHalf, packed_kernels_half_generic()),
      fp_row("bits/generic", L::kBits, packed_kernels_bits_generic()),
      fp_row("tcq/generic", L::kTrellis, packed_kernels_trellis_generic()),
      ptq161_row("ptq161/generic", packed_kernels_ptq161_generic()),
      w8a8_row("w8a8/generic", Isa::kGeneric, w8a8_kernels_generic(), q_gen),
      w4a8_row("w4a8/generic", Isa::kGeneric, w4a8_reference, s_gen, q_gen),  // the reference loop
      w4a4_row("w4a4/generic", Isa::kGeneric, w4a4_reference),                // the reference loop
  };
}

#ifdef LOWBIT_ARCH_X86
// The x86 rows (AVX2, AVX-VNNI, AVX-512, AMX).
std::vector<LinearKernel> x86_rows() {
  const QuantizeRowsFn q_avx2 = quantize_rows_int8_avx2, q_512 = quantize_rows_int8_avx512;
  const GroupSumsFn s_gen = group_activation_sums_rows, s_512 = group_activation_sums_rows_avx512;
  return {
      // FP32 activations.
      fp_row("lut4/avx2", L::kLut4, packed_kernels_lut4_avx2()),
      // The AVX2 fixed-point GEMV (lut4_fixed16.h, vpmaddubsw): the same integer sums as the VNNI one.
      fp_row("lut4/avx2+fixed16", L::kLut4, packed_kernels_lut4_fixed16_avx2(), lut4_avx2_fixed16_table),
      fp_row("lut4/avxvnni+fixed16", L::kLut4, packed_kernels_lut4_fixed16_avxvnni(), lut4_avxvnni_fixed16_table),
      fp_row("lut4/avx512", L::kLut4, packed_kernels_lut4_avx512()),
      // The fixed-point GEMV (lut4_fixed16.h), which falls back to lut4/avx512's code itself.
      fp_row("lut4/avx512vnni", L::kLut4, packed_kernels_lut4_avx512vnni()),
      fp_row("lut4/avx512vnni+gfni", L::kLut4, packed_kernels_lut4_avx512vnni_gfni(), cpu_has_gfni),
      fp_row("int8/avx2", L::kInt8Row, packed_kernels_int8_avx2()),
      fp_row("int8/avx2+fixed16", L::kInt8Row, packed_kernels_int8_fixed16_avx2()),  // int8_fixed16.h, vpmaddwd
      fp_row("int8/avxvnni+fixed16", L::kInt8Row, packed_kernels_int8_fixed16_avxvnni(), cpu_has_avx_vnni),
      fp_row("int8/avx512", L::kInt8Row, packed_kernels_int8_avx512()),
      fp_row("int8/avx512vnni", L::kInt8Row, packed_kernels_int8_avx512vnni()),  // int8_fixed16.h
      fp_row("fp8/avx2", L::kFp8Row, packed_kernels_fp8_avx2()),
      fp_row("fp8/avx512", L::kFp8Row, packed_kernels_fp8_avx512()),
      fp_row("half/avx2", L::kHalf, packed_kernels_half_avx2()),
      fp_row("half/avx512", L::kHalf, packed_kernels_half_avx512()),
      fp_row("bits/avx2", L::kBits, packed_kernels_bits_avx2()),
      fp_row("bits/avx512", L::kBits, packed_kernels_bits_avx512()),
      // Trellis-coded weights (trellis_kernels.h): FP32 portable; SIMD ones on 16-bit fixed-point x,
      // the 64-byte codebook in registers. AVX-512 without VBMI (Skylake-X, Cascade Lake) runs the AVX2 row.
      fp_row("tcq/avx2", L::kTrellis, packed_kernels_trellis_avx2()),
      fp_row("tcq/avx512vnni+vbmi+gfni", L::kTrellis, packed_kernels_trellis_avx512vbmi(), cpu_has_vbmi_gfni),
      ptq161_row("ptq161/avx2", packed_kernels_ptq161_avx2()),
      ptq161_row("ptq161/avx512", packed_kernels_ptq161_avx512()),
      // INT8 activations per token / static: W8A8, W4A8.
      w8a8_row("w8a8/avx2", Isa::kAvx2, w8a8_kernels_avx2(), q_avx2),  // also the AVX-512 (no VNNI) level's
      w8a8_row("w8a8/avxvnni", Isa::kAvxVnni, w8a8_kernels_avxvnni(), q_avx2, false, cpu_has_avx_vnni),
      w8a8_row("w8a8/avx512vnni", Isa::kAvx512Vnni, w8a8_kernels_avx512vnni(), q_512),
      w8a8_row("w8a8/amx+avx512vnni", Isa::kAmx, w8a8_kernels_avx512vnni(), q_512, true),
      w4a8_row("w4a8/avx2", Isa::kAvx2, w4a8_avx2, s_gen, q_avx2),
      w4a8_row("w4a8/avxvnni", Isa::kAvxVnni, w4a8_avxvnni, s_gen, q_avx2, false, cpu_has_avx_vnni),
      w4a8_row("w4a8/avx512vnni", Isa::kAvx512Vnni, w4a8_avx512vnni, s_512, q_512),
      w4a8_row("w4a8/amx+avx512vnni", Isa::kAmx, w4a8_avx512vnni, s_512, q_512, true),
      // INT4 activations per token / static / group: W4A4.
      w4a4_row("w4a4/avx2", Isa::kAvx2, w4a4_avx2),               // also the AVX-512 (no VNNI) level's
      w4a4_row("w4a4/avx512vnni", Isa::kAvx512Vnni, w4a4_avx512vnni),
  };
}
#endif

#ifdef LOWBIT_ARCH_ARM64
// The 64-bit ARM rows (NEON, dotprod, i8mm).
std::vector<LinearKernel> arm64_rows() {
  const QuantizeRowsFn q_neon = quantize_rows_int8_neon;
  return {
      fp_row("lut4/neon", L::kLut4, packed_kernels_lut4_neon()),
      fp_row("int8/neon", L::kInt8Row, packed_kernels_int8_neon()),
      fp_row("half/neon", L::kHalf, packed_kernels_half_neon()),
      w8a8_row("w8a8/neon-dotprod", Isa::kNeonDotprod, w8a8_kernels_neon_dotprod(), q_neon),
      w8a8_row("w8a8/neon-i8mm", Isa::kNeonI8mm, w8a8_kernels_neon_i8mm(), q_neon),
  };
}
#endif

// The rows. At one level, a later row with a condition (accepts) wins over an
// earlier one where the condition holds.
std::vector<LinearKernel> build_table() {
  std::vector<LinearKernel> table = generic_rows();
#ifdef LOWBIT_ARCH_X86
  for (const LinearKernel& k : x86_rows()) table.push_back(k);
#endif
#ifdef LOWBIT_ARCH_ARM64
  for (const LinearKernel& k : arm64_rows()) table.push_back(k);
#endif
  return table;
}

}  // namespace

const char* weight_layout_name(WeightLayout layout) {
  switch (layout) {
    case WeightLayout::kLut4: return "lut4";
    case WeightLayout::kLut4Integer: return "lut4-integer";
    case WeightLayout::kInt8Row: return "int8";
    case WeightLayout::kFp8Row: return "fp8";
    case WeightLayout::kHalf: return "half";
    case WeightLayout::kBits: return "bits";
    case WeightLayout::kTrellis: return "tcq";
    case WeightLayout::kPtq161: return "ptq161";
  }
  return "?";
}

bool weight_has_layout(const PackedMatrix& w, WeightLayout layout) {
  switch (layout) {
    case WeightLayout::kLut4: return w.kind == PackedKind::kLut4;
    case WeightLayout::kLut4Integer: return w4a8_supported(w, nullptr);
    case WeightLayout::kInt8Row: return w.kind == PackedKind::kInt8Row;
    case WeightLayout::kFp8Row: return w.kind == PackedKind::kFp8Row;
    case WeightLayout::kHalf: return w.kind == PackedKind::kFp16 || w.kind == PackedKind::kBf16;
    case WeightLayout::kBits: return w.kind == PackedKind::kBits;
    case WeightLayout::kTrellis: return w.kind == PackedKind::kTrellis;
    case WeightLayout::kPtq161: return w.kind == PackedKind::kPtq161;
  }
  return false;
}

const char* act_format_name(ActFormat act) {
  switch (act) {
    case ActFormat::kFp32: return "fp32";
    case ActFormat::kInt8: return "int8";
    case ActFormat::kInt4: return "int4";
  }
  return "?";
}

std::span<const LinearKernel> linear_kernels() {
  static const std::vector<LinearKernel> table = build_table();
  return table;
}

const LinearKernel* find_linear_kernel(const PackedMatrix& w, ActFormat act, Isa isa) {
  static const CpuFeatures cpu = detect_cpu_features();
  const LinearKernel* best = nullptr;
  for (const LinearKernel& k : linear_kernels()) {
    if (k.act != act || !isa_includes(isa, k.isa) || !weight_has_layout(w, k.layout)) continue;
    if (k.accepts != nullptr && !k.accepts(w, cpu)) continue;
    if (best == nullptr || k.isa >= best->isa) best = &k;
  }
  return best;
}

const LinearKernel* find_linear_kernel(const char* name) {
  for (const LinearKernel& k : linear_kernels()) {
    if (std::strcmp(k.name, name) == 0) return &k;
  }
  return nullptr;
}

}  // namespace lowbit
