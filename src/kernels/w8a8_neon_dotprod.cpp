// W8A8 GEMM with SDOT (ARMv8.2 dotprod; w8a8.h). The stored u = q + 128 turns
// back into the signed q by flipping the top bit (u ^ 0x80 as int8 = u - 128), so
// the signed-by-signed SDOT gives sum_c q w directly, without the row-sum
// correction: the same integer as the reference (|sum| <= 127 * 128 * K < 2^31),
// then the reference's float steps, so the bits equal w8a8_reference's.
#include <arm_neon.h>

#include "kernels/w8a8.h"

namespace lowbit {
namespace {

void gemm(const PackedMatrix& w, const std::vector<int32_t>&, const Int8Activations& a, int64_t r0, int64_t r1,
          float* y, int64_t ldy) {
  const uint8x16_t flip = vdupq_n_u8(0x80);
  const int64_t k = w.cols_padded;  // a multiple of 32
  for (int64_t t = 0; t < a.tokens; ++t) {
    const uint8_t* u = a.u8.data() + t * a.cols_padded;  // [cols_padded]
    int64_t r = r0;
    // Four rows share each activation load.
    for (; r + 4 <= r1; r += 4) {
      int32x4_t acc[4] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)};
      for (int64_t c = 0; c < k; c += 16) {
        const int8x16_t q = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(u + c), flip));
        for (int i = 0; i < 4; ++i) {
          acc[i] = vdotq_s32(acc[i], q, vld1q_s8(reinterpret_cast<const int8_t*>(w.codes.data() + (r + i) * k + c)));
        }
      }
      for (int i = 0; i < 4; ++i) {
        y[t * ldy + (r + i - r0)] =
            static_cast<float>(vaddvq_s32(acc[i])) * a.scale[t] * (w.row_scales[r + i] * w.tensor_scale);
      }
    }
    for (; r < r1; ++r) {
      int32x4_t acc = vdupq_n_s32(0);
      for (int64_t c = 0; c < k; c += 16) {
        const int8x16_t q = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(u + c), flip));
        acc = vdotq_s32(acc, q, vld1q_s8(reinterpret_cast<const int8_t*>(w.codes.data() + r * k + c)));
      }
      y[t * ldy + (r - r0)] = static_cast<float>(vaddvq_s32(acc)) * a.scale[t] * (w.row_scales[r] * w.tensor_scale);
    }
  }
}

}  // namespace

W8A8Kernels w8a8_kernels_neon_dotprod() { return {gemm, Isa::kNeonDotprod}; }

}  // namespace lowbit
