// Internal to the element kernels (element_kernel.cpp, element_simd_avx512.cpp):
// the tables and constants one ElementKernel holds, and the AVX-512 entry points.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "formats/element_format.h"
#include "kernels/cpu_features.h"

namespace lowbit {

enum class EncodeMethod { kMinifloat, kInteger, kThresholds, kReference };

// Round-to-nearest-even of a float32 to a minifloat on the float's bits. For
// |x| >= 2^emin (the format's smallest normal) the dropped float32 mantissa bits
// are rounded off with the usual bias trick, (a + 2^(s-1) - 1 + lsb) >> s, and the
// exponent is rebased; a carry out of the mantissa bumps the exponent, which is
// the right code because magnitude codes are consecutive in value. Below 2^emin
// adding 2^(emin - M + 23) makes the FPU round to the subnormal spacing 2^(emin-M).
struct MinifloatFast {
  int shift = 0;                 // 23 - M: float32 mantissa bits dropped
  uint32_t round_bias = 0;       // 2^(shift-1) - 1
  uint32_t rebias = 0;           // (127 - bias) << M
  uint32_t min_normal_bits = 0;  // float32 bits of 2^emin
  float subnormal_magic = 0.0f;  // 2^(emin - M + 23)
  uint32_t magic_bits = 0;
  uint32_t max_mag = 0;          // largest finite magnitude code
  uint32_t overflow_code = 0;    // inf (IEEE) or max_mag (saturating formats)
  uint32_t nan_code = 0;
  uint32_t sign_bit = 0;         // 0 for unsigned formats
  bool has_sign = false;
};

// Integers: round half to even, clamp to [lo, hi], NaN -> 0, keep `mask` bits.
struct IntFast {
  float lo = 0.0f;
  float hi = 0.0f;
  uint32_t mask = 0;
};

// The reference encoder as a step function of the ordered key of the input
// (ordered_key below): key < bounds[0] gives codes[0], bounds[i-1] <= key <
// bounds[i] gives codes[i]. Padded to a power of two so the search is branchless.
struct ThresholdTable {
  int size = 0;                  // power of two > number of bounds
  std::vector<int32_t> bounds;   // [size - 1], ascending, padded with INT32_MAX
  std::vector<int32_t> codes;    // [size]
  uint32_t nan_code = 0;         // encode(NaN)
};

struct ElementKernelData {
  ElementFormat format;
  Isa isa = Isa::kGeneric;       // kGeneric or kAvx512: the code that runs
  EncodeMethod method = EncodeMethod::kReference;
  MinifloatFast minifloat;       // when eligible (see element_kernel.cpp)
  IntFast integer;               // integer formats
  ThresholdTable thresholds;     // formats of <= 8 bits
  std::vector<float> decode_table;  // [2^bits], indexed by code
};

// Maps float32 bits to int32 keys in the order of the values, -0 just below +0,
// NaNs beyond the infinities: negative floats have their magnitude bits flipped.
inline int32_t ordered_key(uint32_t bits) {
  const auto s = static_cast<int32_t>(bits);
  return s < 0 ? (s ^ 0x7fffffff) : s;
}

namespace avx512 {
// Only the kMinifloat, kInteger and kThresholds methods; n may be any length.
void encode(const ElementKernelData& d, const float* x, uint8_t* codes, size_t n);
void encode(const ElementKernelData& d, const float* x, uint16_t* codes, size_t n);
void decode(const ElementKernelData& d, const uint8_t* codes, float* y, size_t n);
void decode(const ElementKernelData& d, const uint16_t* codes, float* y, size_t n);
}  // namespace avx512

}  // namespace lowbit
