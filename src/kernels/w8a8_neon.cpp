// W8A8 activation quantization on NEON (w8a8.h): per token, max |x| and the
// finiteness check in four lanes, then q = clamp(round_half_even(x / s), -127,
// 127) with IEEE division (fdiv) and frintn, the reference's operations, so the
// bytes equal quantize_rows_int8_generic's.
#include <arm_neon.h>

#include <cfloat>
#include <cmath>

#include "kernels/w8a8.h"

namespace lowbit {

void quantize_rows_int8_neon(const float* x, int64_t cols, int64_t t0, int64_t t1, Int8Activations& a) {
  const float32x4_t fmax = vdupq_n_f32(FLT_MAX);
  for (int64_t t = t0; t < t1; ++t) {
    const float* xt = x + t * cols;  // [cols]
    float32x4_t vmax = vdupq_n_f32(0.0f);
    uint32x4_t finite = vdupq_n_u32(~0u);  // |x| <= FLT_MAX is false for NaN and infinities
    int64_t c = 0;
    for (; c + 4 <= cols; c += 4) {
      const float32x4_t v = vabsq_f32(vld1q_f32(xt + c));
      finite = vandq_u32(finite, vcleq_f32(v, fmax));
      vmax = vmaxq_f32(vmax, v);
    }
    float amax = vmaxvq_f32(vmax);
    bool ok = vminvq_u32(finite) != 0;
    for (; c < cols; ++c) {
      ok = ok && std::isfinite(xt[c]);
      amax = std::max(amax, std::fabs(xt[c]));
    }
    if (!ok) {
      a.scale[t] = std::nanf("");
      continue;
    }
    const float s = int_act_scale({}, amax, 127.0f);
    if (!(s > 0.0f)) continue;
    a.scale[t] = s;
    uint8_t* u = a.u8.data() + t * a.cols_padded;  // [cols_padded], q + 128
    const float32x4_t vs = vdupq_n_f32(s), lo = vdupq_n_f32(-127.0f), hi = vdupq_n_f32(127.0f);
    const int32x4_t bias = vdupq_n_s32(128);
    c = 0;
    for (; c + 8 <= cols; c += 8) {
      int32x4_t q[2];
      for (int i = 0; i < 2; ++i) {
        const float32x4_t r = vrndnq_f32(vdivq_f32(vld1q_f32(xt + c + 4 * i), vs));
        q[i] = vaddq_s32(vcvtq_s32_f32(vminq_f32(vmaxq_f32(r, lo), hi)), bias);  // integral: exact
      }
      const uint16x8_t h = vcombine_u16(vqmovun_s32(q[0]), vqmovun_s32(q[1]));
      vst1_u8(u + c, vmovn_u16(h));
    }
    for (; c < cols; ++c) {
      const float q = std::fmin(std::fmax(std::nearbyint(xt[c] / s), -127.0f), 127.0f);
      u[c] = static_cast<uint8_t>(static_cast<int>(q) + 128);
    }
  }
}

}  // namespace lowbit
