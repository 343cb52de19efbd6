// kFp16 / kBf16 GEMV on NEON (packed_matrix.h), FP32 activations: FP16 widened
// by fcvtl (base ARMv8 NEON, exact), BF16 by a 16-bit left shift (exact), 16
// lanes times tensor_scale, as the portable kernel. Error bound: packed_gemv_bound.
#include "kernels/neon_lanes.h"
#include "kernels/packed_matrix.h"

namespace lowbit {
namespace {

template <bool kBf16>
neon::Lanes16 widen16(const uint16_t* p) {
  neon::Lanes16 out;
  for (int i = 0; i < 2; ++i) {
    const uint16x8_t h = vld1q_u16(p + 8 * i);
    if constexpr (kBf16) {
      out.v[2 * i] = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16));
      out.v[2 * i + 1] = vreinterpretq_f32_u32(vshll_n_u16(vget_high_u16(h), 16));
    } else {
      out.v[2 * i] = vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(h)));
      out.v[2 * i + 1] = vcvt_f32_f16(vreinterpret_f16_u16(vget_high_u16(h)));
    }
  }
  return out;
}

template <bool kBf16>
void gemv_rows(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  const float* x = a.x.data();
  for (int64_t r = r0; r < r1; ++r) {
    // [cols_padded] little-endian 16-bit values (aarch64 Linux is little-endian).
    const uint16_t* p = reinterpret_cast<const uint16_t*>(w.codes.data() + r * w.row_bytes());
    neon::Lanes16 acc = neon::zero16();
    for (int64_t c = 0; c < w.cols_padded; c += 16) neon::fma16(acc, widen16<kBf16>(p + c), neon::load16(x + c));
    y[r - r0] = neon::sum16(acc) * w.tensor_scale;
  }
}

void gemv(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  if (w.kind == PackedKind::kBf16) {
    gemv_rows<true>(w, a, r0, r1, y);
  } else {
    gemv_rows<false>(w, a, r0, r1, y);
  }
}

}  // namespace

PackedKernels packed_kernels_half_neon() {
  return {gemv, packed_kernels_half_generic().dequantize_rows, Isa::kNeon};
}

}  // namespace lowbit
