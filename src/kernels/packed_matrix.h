// Packed weight layouts the runtime kernels read (issue 7), converted at load
// from the quantized model file (model/packed_convert.h), and the kernels that
// multiply them: GEMV for decode, row dequantization for prompt GEMMs.
//
// Every layout stores a weight W [rows, cols] (out_features x in_features) row
// by row, each row padded with zero codes to cols_padded = ceil(cols / 32) * 32
// columns; callers pass activations padded with zeros to cols_padded, so the
// padding multiplies 0 and no kernel has a tail loop.
//
//   kLut4    4-bit codes through a 16-entry table, one 2-byte scale per group of
//            G columns (G a multiple of 16), optional 2-byte minimum:
//              W[r, c] = lut[code] * s[r, c / G] (+ m[r, c / G]) , all times tensor_scale
//            Covers INT4 symmetric and asymmetric (zero point folded into the
//            minimum, GPTQ/AWQ groups), FP4 E2M1 (MXFP4, NVFP4), NF4 and any
//            4-bit codebook. Codes: per 32-column block, 16 bytes; byte j holds
//            column 32b + j in its low nibble and column 32b + 16 + j in its high
//            nibble (so one 16-byte load gives two 16-lane vectors of codes
//            without a shuffle). Scales are FP16 codes, or BF16 codes when
//            `bf16_scales` (E8M0 powers of two do not fit FP16; UE4M3 and FP16
//            scales do, exactly).
//   kBits    2- or 3-bit codes (`code_bits`) through a 4- / 8-entry table, scales
//            and minimums as kLut4 (INT2 / INT3 groups, uint2 / uint3 with a
//            minimum: int2_g64, int3_g128). Codes: per 32-column block, 4 * b
//            bytes; for each half h (columns 32b + 16h + i, i = 0..15):
//              bytes 4h..4h+3: the low two bits of column i at bit 2i of this
//                little-endian 32-bit word (byte 4h + i / 4, bits 2 (i % 4) ..)
//              3-bit only, bytes 8 + 2h, 9 + 2h: the third bit of column i at bit
//                i of this little-endian 16-bit word
//            so 16 codes of a half come from one 32-bit broadcast, a variable
//            shift and (3-bit) one mask register, without a table of shuffles.
//   kPtq161  PTQ1.61 (formats/ptq161_code.h): columns permuted so that the
//            salient ones come first. Packed position col_pos[c] of column c;
//            positions [0, salient_padded) hold the salient columns (4-bit codes
//            q, in kLut4's nibble order per 32 positions, padding codes 0),
//            positions [salient_padded, cols_padded) the binarised ones in blocks
//            of `group` (a multiple of 32; padding bits 0), one sign bit each,
//            bit i of the little-endian 32-bit word k = position 32k + i:
//              W[r, c] = s_r q + m_r                   (salient)
//              W[r, c] = mu_rb + alpha_rb (bit ? 1 : -1) (block b of the binarised)
//            scales [rows][2 + 2 * blocks] FP16: s, m, alpha_0, mu_0, ...
//            cols_padded is salient_padded + blocks * group (here it may exceed
//            cols + 31); prepare_activation gathers x into the packed order and
//            its sums (salient part, each block) into xsum, and the GEMV forms
//              y = s sum q x' + m sum_sal x' + sum_b alpha_b (2 P_b - S_b) + mu_b S_b
//            with P_b the sum of x' over the set bits of block b.
//   kInt8Row INT8 codes (two's complement) [rows][cols_padded], FP32 scale per row:
//              W[r, c] = code * row_scale[r]
//   kFp8Row  FP8 E4M3 codes [rows][cols_padded], FP32 scale per row:
//              W[r, c] = e4m3(code) * row_scale[r]
//   kFp16    IEEE binary16 values [rows][cols_padded] (2 bytes each, little-endian)
//   kBf16    bfloat16 values, likewise
//   kTrellis trellis-coded weights (formats/trellis_code.h): per row, the stored
//            tail-biting bit strings of its 64-column sequences unchanged
//            (cols / 64 * seq_bytes() bytes), FP16 scales [rows][groups] per
//            `group` columns (a multiple of 64); cols must be a multiple of 64,
//            so cols_padded == cols. W[r, c] = scale * value(state) (the file
//            comment of trellis_code.h), times tensor_scale (1 when converted).
//            Kernels: kernels/trellis_kernels.h.
//
// The GEMV kernels compute y[r] = sum_c W[r, c] x[c] for a range of rows with
// FP32 arithmetic: per group, sum_c lut[code] x[c] in 16 lanes, then times the
// group scale; the asymmetric minimum enters as m * sum_{c in group} x[c] (the
// group sums of x are computed once per call, PackedActivation). So the result
// differs from the dequantize-then-dot reference only by FP32 rounding: for
// n = cols_padded, |err| <= (n/16 + G/16 + 8) * 2^-24 * sum_c (|lut s| + |m|) |x_c|
// (recursive-summation bound over the lane depth, the lane tree and the scale
// products; packed_gemv_bound computes it).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/huge_page_allocator.h"
#include "core/status.h"
#include "formats/trellis_code.h"
#include "kernels/cpu_features.h"

namespace lowbit {

enum class PackedKind { kLut4, kInt8Row, kFp8Row, kFp16, kBf16, kBits, kTrellis, kPtq161 };

inline constexpr int64_t kPackedColAlign = 32;

const char* packed_kind_name(PackedKind kind);

struct PackedMatrix {
  PackedKind kind = PackedKind::kLut4;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t cols_padded = 0;       // multiple of kPackedColAlign
  int group = 0;                 // kLut4, kBits: columns per scale, a multiple of 16
  bool asymmetric = false;       // kLut4, kBits: a minimum per group
  bool bf16_scales = false;      // kLut4, kBits: scales/mins are BF16 codes (else FP16)
  int code_bits = 0;             // kBits: 2 or 3
  int trellis_state_bits = 0;    // kTrellis: L (trellis_code.h)
  int trellis_step_bits = 0;     // kTrellis: k, new bits per step
  int trellis_values_per_step = 0;  // kTrellis: V
  float lut[16] = {};            // kLut4, kBits: value of each code (kBits: the first 2^code_bits)
  float tensor_scale = 1.0f;     // multiplies every output
  // Streamed once per decode token: on huge pages where the system allows (core/huge_page_allocator.h).
  HugePageVector<uint8_t> codes;    // [rows][row_bytes()]
  HugePageVector<uint16_t> scales;  // kLut4, kBits: [rows][n_groups()]; kTrellis: the same, FP16
  HugePageVector<uint16_t> mins;    // kLut4, kBits asymmetric: [rows][n_groups()]
  std::vector<float> row_scales;    // kInt8Row, kFp8Row: [rows]
  int64_t salient_padded = 0;       // kPtq161: salient columns rounded up to 32
  std::vector<int32_t> col_pos;     // kPtq161: [cols] packed position of each column

  int64_t row_bytes() const;
  int64_t n_groups() const { return group > 0 ? (cols_padded + group - 1) / group : 0; }
  // kPtq161: binarised blocks per row, and FP16 scales per row (2 + 2 * blocks).
  int64_t ptq161_blocks() const { return group > 0 ? (cols_padded - salient_padded) / group : 0; }
  int64_t ptq161_row_scales() const { return 2 + 2 * ptq161_blocks(); }
  // Bytes held (codes, scales, mins, row scales, kPtq161's positions, the tensor scale).
  uint64_t storage_bytes() const;
  // Checks every array size against the shape; errors say which.
  Status validate() const;
  // kTrellis: the code's parameters (group included).
  TrellisParams trellis() const;
};

// Whether the layout has group scales (kLut4, kBits).
inline bool packed_grouped(PackedKind kind) { return kind == PackedKind::kLut4 || kind == PackedKind::kBits; }

// x in 16-bit fixed point for the fixed-point GEMVs (kLut4: lut4_fixed16.h, kInt8Row: int8_fixed16.h).
struct Fixed16Activation {
  bool valid = false;              // false: not prepared, or x is not finite (kernels run FP32)
  float scale = 0.0f;              // x[c] ≈ scale * xi[c]
  std::vector<int8_t> bytes;       // lo / hi bytes of xi in the layout's order (lut4_fixed16.h, int8_fixed16.h)
  std::vector<float> group_sums;   // kLut4: [groups + 16] sum of xi over each group (exact below 2^24), then zeros
  int64_t total = 0;               // kInt8Row: sum of xi over all columns, exact
};

// x padded to cols_padded, and its group sums for asymmetric grouped layouts;
// with `fixed16` (the kernels' PackedKernels::prepare_fixed16) also the fixed-point copy
// where the layout takes it.
struct PackedActivation {
  std::vector<float> x;     // [cols_padded], zeros past cols
  std::vector<float> xsum;  // kLut4 / kBits asymmetric, fixed not valid: [n_groups] sum of x over each group;
                            // kPtq161: [1 + blocks] sum over the salient part, then over each block
  Fixed16Activation fixed;  // fixed-point kernels on the layouts that take them
};
// Fills a.fixed from a.x where the layout takes it, else leaves it invalid
// (lut4_fixed16.h, int8_fixed16.h): a portable preparation or its SIMD twin.
using Fixed16Prepare = void (*)(const PackedMatrix& w, PackedActivation& a);
void prepare_activation(const PackedMatrix& w, const float* x, PackedActivation& a, Fixed16Prepare fixed16 = nullptr);

// Scalar value of one weight (the reference decode of the packed layout).
float packed_value(const PackedMatrix& w, int64_t r, int64_t c);
// The code of column c of row r of a kLut4 matrix (its 32-column block's nibble).
uint32_t lut4_code(const PackedMatrix& w, int64_t r, int64_t c);
// The code of column c of row r of a kBits matrix (the reference decode of its layout).
uint32_t bits_code(const PackedMatrix& w, int64_t r, int64_t c);
// The code at packed position p of row r of a kPtq161 matrix: the 4-bit code of a
// salient position, the sign bit (1: +alpha) of a binarised one.
uint32_t ptq161_code(const PackedMatrix& w, int64_t r, int64_t p);

// The reference GEMV in double: y[r] = sum_c packed_value(r, c) x[c] for r in [r0, r1).
void gemv_packed_reference(const PackedMatrix& w, const float* x, int64_t r0, int64_t r1, float* y);
// The error bound of the FP32 kernels for row r (see the header comment).
double packed_gemv_bound(const PackedMatrix& w, const float* x, int64_t r);

// One op set for one layout and ISA. x / a: prepared by prepare_activation.
struct PackedKernels {
  // y[r - r0] for r in [r0, r1).
  void (*gemv)(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) = nullptr;
  // out [r1 - r0][cols] = W[r0:r1, 0:cols] in FP32 (for prompt GEMMs on a tile).
  void (*dequantize_rows)(const PackedMatrix& w, int64_t r0, int64_t r1, float* out) = nullptr;
  Isa isa = Isa::kGeneric;  // the level the kernels were written for (named in kernels/kernel_table.h)
  // Set: gemv reads PackedActivation::fixed where valid; pass it to prepare_activation.
  Fixed16Prepare prepare_fixed16 = nullptr;
};

// Per-ISA op sets (one translation unit per weight type and ISA); which one runs
// at which level, and its name, is kernels/kernel_table.h's.
PackedKernels packed_kernels_lut4_generic();
PackedKernels packed_kernels_lut4_avx2();
PackedKernels packed_kernels_lut4_fixed16_avx2();  // falls back to lut4/avx2 where the layout is not eligible
PackedKernels packed_kernels_lut4_fixed16_avxvnni();  // the same with AVX-VNNI byte products (needs avx_vnni)
PackedKernels packed_kernels_lut4_avx512();
PackedKernels packed_kernels_lut4_avx512vnni();
PackedKernels packed_kernels_lut4_avx512vnni_gfni();  // call only where CPUID reports GFNI
PackedKernels packed_kernels_int8_generic();
PackedKernels packed_kernels_int8_avx2();
PackedKernels packed_kernels_int8_fixed16_avx2();  // falls back to int8/avx2 where x is not finite
PackedKernels packed_kernels_int8_fixed16_avxvnni();  // the same with AVX-VNNI byte products (needs avx_vnni)
PackedKernels packed_kernels_int8_avx512();
PackedKernels packed_kernels_int8_avx512vnni();
PackedKernels packed_kernels_fp8_generic();
PackedKernels packed_kernels_fp8_avx2();
PackedKernels packed_kernels_fp8_avx512();
PackedKernels packed_kernels_half_generic();
PackedKernels packed_kernels_half_avx2();
PackedKernels packed_kernels_half_avx512();
PackedKernels packed_kernels_bits_generic();
PackedKernels packed_kernels_bits_avx2();
PackedKernels packed_kernels_bits_avx512();
PackedKernels packed_kernels_trellis_generic();      // FP32 x (kernels/trellis_kernels.h)
PackedKernels packed_kernels_trellis_avx2();         // 16-bit fixed-point x, vpshufb table, vpmaddwd
PackedKernels packed_kernels_trellis_avx512vbmi();   // 16-bit fixed-point x, vpermb table, vpdpbusd;
                                                     // call only where CPUID reports AVX512_VBMI and GFNI
PackedKernels packed_kernels_ptq161_generic();
PackedKernels packed_kernels_ptq161_avx2();
PackedKernels packed_kernels_ptq161_avx512();
// 64-bit ARM builds only (files *_neon.cpp; kernels/kernel_table.h names them).
PackedKernels packed_kernels_lut4_neon();  // FP32 x, the table in four tbl registers, 16 lanes as generic
PackedKernels packed_kernels_int8_neon();  // FP32 x, codes widened to FP32, 16 lanes
PackedKernels packed_kernels_half_neon();  // FP32 x, FP16 (fcvtl) / BF16 (shift) widened exactly, 16 lanes

// FP8 E4M3 (OCP, bias 7, no infinities) code -> value; 0x7F / 0xFF (NaN) decode as 480.
float e4m3_value(uint8_t code);

}  // namespace lowbit
