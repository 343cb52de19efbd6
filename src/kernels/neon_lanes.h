// Sixteen FP32 lanes in four NEON registers, the accumulator shape of the
// portable kernels (rowwise_generic.h) and of the x86 ones, so the NEON GEMVs
// keep their summation depth and packed_gemv_bound holds for them unchanged.
// aarch64 builds only (included by *_neon*.cpp).
#pragma once

#include <arm_neon.h>

namespace lowbit::neon {

struct Lanes16 {
  float32x4_t v[4];
};

inline Lanes16 zero16() { return {{vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)}}; }

// acc += a * b, lane by lane (one rounding: a fused multiply-add).
inline void fma16(Lanes16& acc, const Lanes16& a, const Lanes16& b) {
  for (int i = 0; i < 4; ++i) acc.v[i] = vfmaq_f32(acc.v[i], a.v[i], b.v[i]);
}

// acc += a * s (a scalar).
inline void fma16(Lanes16& acc, const Lanes16& a, float s) {
  for (int i = 0; i < 4; ++i) acc.v[i] = vfmaq_n_f32(acc.v[i], a.v[i], s);
}

inline Lanes16 load16(const float* p) { return {{vld1q_f32(p), vld1q_f32(p + 4), vld1q_f32(p + 8), vld1q_f32(p + 12)}}; }

// The sum of the 16 lanes by a tree of depth 4.
inline float sum16(const Lanes16& a) {
  return vaddvq_f32(vaddq_f32(vaddq_f32(a.v[0], a.v[1]), vaddq_f32(a.v[2], a.v[3])));
}

// Sixteen signed bytes widened to FP32 (exact).
inline Lanes16 s8_to_f32(int8x16_t b) {
  const int16x8_t lo = vmovl_s8(vget_low_s8(b)), hi = vmovl_s8(vget_high_s8(b));
  return {{vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo))), vcvtq_f32_s32(vmovl_s16(vget_high_s16(lo))),
           vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi))), vcvtq_f32_s32(vmovl_s16(vget_high_s16(hi)))}};
}

}  // namespace lowbit::neon
