// kBits kernels in portable C++ (packed_matrix.h): 16 lanes per group, as the
// SIMD kernels (and the kLut4 ones), so the FP32 error bound is the same.
#include <algorithm>

#include "core/half.h"
#include "kernels/packed_matrix.h"

namespace lowbit {
namespace {

float scale16(uint16_t code, bool bf16) { return bf16 ? bf16_to_float(code) : fp16_to_float(code); }

// The 16 codes of half h of a 32-column block (layout in packed_matrix.h).
void half_codes(const uint8_t* block, int bits, int h, uint32_t* out) {
  const uint32_t lo = static_cast<uint32_t>(block[4 * h]) | static_cast<uint32_t>(block[4 * h + 1]) << 8 |
                      static_cast<uint32_t>(block[4 * h + 2]) << 16 | static_cast<uint32_t>(block[4 * h + 3]) << 24;
  const uint32_t hi =
      bits == 3 ? (static_cast<uint32_t>(block[8 + 2 * h]) | static_cast<uint32_t>(block[9 + 2 * h]) << 8) : 0u;
  for (int i = 0; i < 16; ++i) out[i] = ((lo >> (2 * i)) & 3u) | ((hi >> i) & 1u) << 2;
}

void gemv(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  const int64_t nb = w.cols_padded / 32, ng = w.n_groups(), bb = 4 * w.code_bits;
  const int64_t blocks_per_group = std::max<int64_t>(1, w.group / 32);
  const float* x = a.x.data();
  uint32_t q[2][16];
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* codes = w.codes.data() + r * w.row_bytes();
    const uint16_t* sc = w.scales.data() + r * ng;
    float acc[16] = {};
    for (int64_t b0 = 0; b0 < nb; b0 += blocks_per_group) {
      const int64_t b1 = std::min(nb, b0 + blocks_per_group);
      float lo[16] = {}, hi[16] = {};
      for (int64_t b = b0; b < b1; ++b) {
        half_codes(codes + bb * b, w.code_bits, 0, q[0]);
        half_codes(codes + bb * b, w.code_bits, 1, q[1]);
        const float* xb = x + 32 * b;
        for (int j = 0; j < 16; ++j) {
          lo[j] += w.lut[q[0][j]] * xb[j];
          hi[j] += w.lut[q[1][j]] * xb[16 + j];
        }
      }
      // Groups of 16 split a 32-column block: the high half belongs to the next group.
      const int64_t g_lo = 32 * b0 / w.group, g_hi = (32 * b0 + 16) / w.group;
      const float s_lo = scale16(sc[g_lo], w.bf16_scales), s_hi = scale16(sc[g_hi], w.bf16_scales);
      for (int j = 0; j < 16; ++j) acc[j] += lo[j] * s_lo + hi[j] * s_hi;
    }
    float sum = 0.0f;
    for (float v : acc) sum += v;
    if (w.asymmetric) {
      const uint16_t* mn = w.mins.data() + r * ng;
      for (int64_t g = 0; g < ng; ++g) sum += scale16(mn[g], w.bf16_scales) * a.xsum[g];
    }
    y[r - r0] = sum * w.tensor_scale;
  }
}

void dequantize_rows(const PackedMatrix& w, int64_t r0, int64_t r1, float* out) {
  for (int64_t r = r0; r < r1; ++r) {
    float* o = out + (r - r0) * w.cols;
    for (int64_t c = 0; c < w.cols; ++c) o[c] = packed_value(w, r, c);
  }
}

}  // namespace

PackedKernels packed_kernels_bits_generic() { return {gemv, dequantize_rows, Isa::kGeneric, "bits/generic"}; }

}  // namespace lowbit
