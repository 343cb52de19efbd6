// kLut4 GEMV on NEON (packed_matrix.h), FP32 activations: the portable kernel's
// arithmetic (rowwise_generic.h gemv_grouped_table: 16 lanes per group, times the
// group scale, the minimum times the group sum of x) with the 16-entry FP32 table
// looked up by byte shuffles. The table's 64 bytes fill four registers; a float
// lane of code c gathers bytes 4c..4c+3 (tbl on four registers), so a vector of
// 16 codes becomes four float vectors without a scalar load. Error bound:
// packed_gemv_bound (the same lane depth; a fused multiply-add rounds less).
#include "core/half.h"
#include "kernels/neon_lanes.h"
#include "kernels/packed_matrix.h"

#include <algorithm>

namespace lowbit {
namespace {

using neon::Lanes16;

// The 16 table values for the 16 codes of `codes` (each 0..15).
inline Lanes16 lookup16(const uint8x16x4_t& table, uint8x16_t codes) {
  const uint8x16_t base = vshlq_n_u8(codes, 2);  // byte offset 4c of each code
  static const uint8_t kSpread[4][16] = {{0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3},
                                         {4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7},
                                         {8, 8, 8, 8, 9, 9, 9, 9, 10, 10, 10, 10, 11, 11, 11, 11},
                                         {12, 12, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14, 15, 15, 15, 15}};
  static const uint8_t kByte[16] = {0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3};
  const uint8x16_t byte = vld1q_u8(kByte);
  Lanes16 out;
  for (int i = 0; i < 4; ++i) {
    const uint8x16_t idx = vaddq_u8(vqtbl1q_u8(base, vld1q_u8(kSpread[i])), byte);
    out.v[i] = vreinterpretq_f32_u8(vqtbl4q_u8(table, idx));
  }
  return out;
}

void gemv(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  const int64_t nb = w.cols_padded / 32, ng = w.n_groups();
  const int64_t blocks_per_group = std::max<int64_t>(1, w.group / 32);
  const float* x = a.x.data();
  uint8x16x4_t table;
  table.val[0] = vreinterpretq_u8_f32(vld1q_f32(w.lut));
  table.val[1] = vreinterpretq_u8_f32(vld1q_f32(w.lut + 4));
  table.val[2] = vreinterpretq_u8_f32(vld1q_f32(w.lut + 8));
  table.val[3] = vreinterpretq_u8_f32(vld1q_f32(w.lut + 12));
  const uint8x16_t low_nibble = vdupq_n_u8(0xF);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* codes = w.codes.data() + r * w.row_bytes();  // 16 bytes per 32-column block
    const uint16_t* sc = w.scales.data() + r * ng;
    Lanes16 acc = neon::zero16();
    for (int64_t b0 = 0; b0 < nb; b0 += blocks_per_group) {
      const int64_t b1 = std::min(nb, b0 + blocks_per_group);
      Lanes16 lo = neon::zero16(), hi = neon::zero16();
      for (int64_t b = b0; b < b1; ++b) {
        const uint8x16_t q = vld1q_u8(codes + 16 * b);  // byte j: column 32b + j low, 32b + 16 + j high nibble
        const float* xb = x + 32 * b;
        neon::fma16(lo, lookup16(table, vandq_u8(q, low_nibble)), neon::load16(xb));
        neon::fma16(hi, lookup16(table, vshrq_n_u8(q, 4)), neon::load16(xb + 16));
      }
      // A group of 16 splits a block: the high half takes the next group's scale.
      const int64_t g_lo = 32 * b0 / w.group, g_hi = (32 * b0 + 16) / w.group;
      neon::fma16(acc, lo, half_code_to_float(sc[g_lo], w.bf16_scales));
      neon::fma16(acc, hi, half_code_to_float(sc[g_hi], w.bf16_scales));
    }
    float sum = neon::sum16(acc);
    if (w.asymmetric) {
      const uint16_t* mn = w.mins.data() + r * ng;
      for (int64_t g = 0; g < ng; ++g) sum += half_code_to_float(mn[g], w.bf16_scales) * a.xsum[g];
    }
    y[r - r0] = sum * w.tensor_scale;
  }
}

}  // namespace

// Prompt tiles dequantize with the portable code (one pass over the weight per tile).
PackedKernels packed_kernels_lut4_neon() {
  return {gemv, packed_kernels_lut4_generic().dequantize_rows, Isa::kNeon};
}

}  // namespace lowbit
