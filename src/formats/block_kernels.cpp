// Scalar block kernels (see block_kernels.h): the reference loops, and the
// generic path on CPUs without AVX-512.
#include <algorithm>
#include <cmath>

#include "formats/block_kernels.h"

namespace lowbit {
namespace {

bool group_abs_max_scalar(const float* x, int64_t n, int64_t group, float* amax) {
  for (int64_t g0 = 0, g = 0; g0 < n; g0 += group, ++g) {
    const int64_t end = std::min(n, g0 + group);
    float m = 0.0f;
    for (int64_t i = g0; i < end; ++i) {
      if (!std::isfinite(x[i])) return false;
      m = std::max(m, std::fabs(x[i]));
    }
    amax[g] = m;
  }
  return true;
}

bool group_min_max_scalar(const float* x, int64_t n, int64_t group, float* mn, float* mx) {
  for (int64_t g0 = 0, g = 0; g0 < n; g0 += group, ++g) {
    const int64_t end = std::min(n, g0 + group);
    float lo = x[g0], hi = x[g0];
    for (int64_t i = g0; i < end; ++i) {
      if (!std::isfinite(x[i])) return false;
      lo = std::min(lo, x[i]);
      hi = std::max(hi, x[i]);
    }
    mn[g] = lo;
    mx[g] = hi;
  }
  return true;
}

inline float clamp_keep_zero_sign(float y, float lo, float hi) { return y < lo ? lo : (y > hi ? hi : y); }

void to_element_scalar(const float* x, int64_t n, int64_t group, const GroupMaps& m, float* y) {
  for (int64_t g0 = 0, g = 0; g0 < n; g0 += group, ++g) {
    const int64_t end = std::min(n, g0 + group);
    const float s = m.scale[g];
    if (s == 0.0f) {
      std::fill(y + g0, y + end, 0.0f);
    } else if (m.asymmetric) {
      const float o = m.offset[g];
      for (int64_t i = g0; i < end; ++i) y[i] = clamp_keep_zero_sign((x[i] - o) / s, m.lo, m.hi);
    } else {
      for (int64_t i = g0; i < end; ++i) y[i] = clamp_keep_zero_sign(x[i] / s, m.lo, m.hi);
    }
  }
}

void from_element_scalar(const float* v, int64_t n, int64_t group, const GroupMaps& m, float* out) {
  for (int64_t g0 = 0, g = 0; g0 < n; g0 += group, ++g) {
    const int64_t end = std::min(n, g0 + group);
    const float s = m.scale[g];
    if (m.asymmetric) {
      const float o = m.offset[g];
      for (int64_t i = g0; i < end; ++i) {
        const float scaled = v[i] * s;  // its own statement: never contracted into an FMA
        out[i] = scaled + o;
      }
    } else {
      for (int64_t i = g0; i < end; ++i) out[i] = v[i] * s;
    }
  }
}

void pack_scalar(const uint16_t* codes, int64_t n, int bits, uint8_t* dst) {
  uint64_t acc = 0;  // pending bits, LSB first
  int filled = 0;
  int64_t out = 0;
  const uint32_t mask = (1u << bits) - 1u;
  for (int64_t i = 0; i < n; ++i) {
    acc |= static_cast<uint64_t>(codes[i] & mask) << filled;
    filled += bits;
    while (filled >= 8) {
      dst[out++] = static_cast<uint8_t>(acc);
      acc >>= 8;
      filled -= 8;
    }
  }
  if (filled > 0) dst[out] = static_cast<uint8_t>(acc);
}

void unpack_scalar(const uint8_t* src, int64_t n, int bits, uint16_t* codes) {
  uint64_t acc = 0;
  int filled = 0;
  int64_t in = 0;
  const uint32_t mask = (1u << bits) - 1u;
  for (int64_t i = 0; i < n; ++i) {
    while (filled < bits) {
      acc |= static_cast<uint64_t>(src[in++]) << filled;
      filled += 8;
    }
    codes[i] = static_cast<uint16_t>(acc & mask);
    acc >>= bits;
    filled -= bits;
  }
}

}  // namespace

const ScaleKernels& scalar_scale_kernels() {
  static const ScaleKernels k{"generic",         group_abs_max_scalar, group_min_max_scalar, to_element_scalar,
                              from_element_scalar, pack_scalar,          unpack_scalar};
  return k;
}

const ScaleKernels& scale_kernels(Isa isa) {
#ifdef LOWBIT_ARCH_X86
  if (isa >= Isa::kAvx512) return avx512_scale_kernels();
#endif
  return scalar_scale_kernels();
}

}  // namespace lowbit
