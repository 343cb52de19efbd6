// A 2-byte group scale code (FP16, or BF16 when the layout says so) as a float,
// for the SIMD kernels: FP16 through the F16C conversion, so only translation
// units compiled for AVX2 or above include this.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "core/half.h"

namespace lowbit {

template <bool kBf16>
inline float scale16(uint16_t code) {
  if constexpr (kBf16) return bf16_to_float(code);
  return _cvtsh_ss(code);
}

}  // namespace lowbit
