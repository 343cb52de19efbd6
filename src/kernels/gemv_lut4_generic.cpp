// kLut4 kernels in portable C++ (packed_matrix.h): 16 lanes per group, as the
// SIMD kernels, so the compiler can vectorize them for the baseline ISA.
#include <algorithm>

#include "core/half.h"
#include "kernels/packed_matrix.h"

namespace lowbit {
namespace {

float scale16(uint16_t code, bool bf16) { return bf16 ? bf16_to_float(code) : fp16_to_float(code); }

void gemv(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  const int64_t nb = w.cols_padded / 32, ng = w.n_groups();
  const int64_t blocks_per_group = std::max<int64_t>(1, w.group / 32);
  const float* x = a.x.data();
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* codes = w.codes.data() + r * w.row_bytes();
    const uint16_t* sc = w.scales.data() + r * ng;
    float acc[16] = {};
    for (int64_t b0 = 0; b0 < nb; b0 += blocks_per_group) {
      const int64_t b1 = std::min(nb, b0 + blocks_per_group);
      float lo[16] = {}, hi[16] = {};
      for (int64_t b = b0; b < b1; ++b) {
        const uint8_t* q = codes + 16 * b;
        const float* xb = x + 32 * b;
        for (int j = 0; j < 16; ++j) {
          lo[j] += w.lut[q[j] & 0xF] * xb[j];
          hi[j] += w.lut[q[j] >> 4] * xb[16 + j];
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
  const int64_t ng = w.n_groups();
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* codes = w.codes.data() + r * w.row_bytes();
    float* o = out + (r - r0) * w.cols;
    for (int64_t c = 0; c < w.cols; ++c) {
      const uint8_t byte = codes[16 * (c / 32) + (c % 16)];
      const uint32_t code = (c % 32) < 16 ? (byte & 0xF) : (byte >> 4);
      const int64_t g = r * ng + c / w.group;
      float v = w.lut[code] * scale16(w.scales[g], w.bf16_scales);
      if (w.asymmetric) v += scale16(w.mins[g], w.bf16_scales);
      o[c] = v * w.tensor_scale;
    }
  }
}

}  // namespace

PackedKernels packed_kernels_lut4_generic() { return {gemv, dequantize_rows, Isa::kGeneric, "lut4/generic"}; }

}  // namespace lowbit
