// W8A8 GEMM with SMMLA (ARMv8.6 I8MM; w8a8.h): one instruction multiplies a 2 x 8
// block of activations (two tokens) by an 8 x 2 block of weights (two rows) into
// a 2 x 2 int32 tile, so each weight load serves two tokens. q = u ^ 0x80 as int8
// (w8a8_neon_dotprod.cpp); the integer sums are the reference's, then its float
// steps, so the bits equal w8a8_reference's. An odd last token or row is paired
// with itself and its copy discarded.
#include <arm_neon.h>

#include <algorithm>

#include "kernels/w8a8.h"

namespace lowbit {
namespace {

void gemm(const PackedMatrix& w, const std::vector<int32_t>&, const Int8Activations& a, int64_t r0, int64_t r1,
          float* y, int64_t ldy) {
  const uint8x8_t flip = vdup_n_u8(0x80);
  const int64_t k = w.cols_padded;  // a multiple of 32
  auto signed8 = [&flip](const uint8_t* p) { return vreinterpret_s8_u8(veor_u8(vld1_u8(p), flip)); };
  for (int64_t t = 0; t < a.tokens; t += 2) {
    const int64_t t1 = std::min(t + 1, a.tokens - 1);
    const uint8_t* u0 = a.u8.data() + t * a.cols_padded;  // [cols_padded]
    const uint8_t* u1 = a.u8.data() + t1 * a.cols_padded;
    for (int64_t r = r0; r < r1; r += 2) {
      const int64_t rb = std::min(r + 1, r1 - 1);
      const int8_t* w0 = reinterpret_cast<const int8_t*>(w.codes.data() + r * k);
      const int8_t* w1 = reinterpret_cast<const int8_t*>(w.codes.data() + rb * k);
      int32x4_t acc = vdupq_n_s32(0);  // [t r, t rb, t1 r, t1 rb]
      for (int64_t c = 0; c < k; c += 8) {
        const int8x16_t xa = vcombine_s8(signed8(u0 + c), signed8(u1 + c));
        const int8x16_t wb = vcombine_s8(vld1_s8(w0 + c), vld1_s8(w1 + c));
        acc = vmmlaq_s32(acc, xa, wb);
      }
      const float f0 = w.row_scales[r] * w.tensor_scale, f1 = w.row_scales[rb] * w.tensor_scale;
      y[t * ldy + (r - r0)] = static_cast<float>(vgetq_lane_s32(acc, 0)) * a.scale[t] * f0;
      if (rb != r) y[t * ldy + (rb - r0)] = static_cast<float>(vgetq_lane_s32(acc, 1)) * a.scale[t] * f1;
      if (t1 != t) {
        y[t1 * ldy + (r - r0)] = static_cast<float>(vgetq_lane_s32(acc, 2)) * a.scale[t1] * f0;
        if (rb != r) y[t1 * ldy + (rb - r0)] = static_cast<float>(vgetq_lane_s32(acc, 3)) * a.scale[t1] * f1;
      }
    }
  }
}

}  // namespace

W8A8Kernels w8a8_kernels_neon_i8mm() { return {gemm, Isa::kNeonI8mm}; }

}  // namespace lowbit
