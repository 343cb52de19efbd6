#include "kernels/lmul.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace lowbit {
namespace {

constexpr uint32_t kSign = 0x80000000u;
constexpr uint32_t kMagnitude = 0x7FFFFFFFu;
constexpr uint32_t kInf = 0x7F800000u;
constexpr uint32_t kMinNormal = 0x00800000u;
constexpr uint32_t kQuietNan = 0x7FC00000u;
constexpr uint32_t kOneBits = 0x3F800000u;  // 1.0f: the exponent bias in place

}  // namespace

int lmul_offset_exponent(int m) { return m <= 3 ? m : (m == 4 ? 3 : 4); }

float lmul_round_operand(float x, int m) {
  const uint32_t u = std::bit_cast<uint32_t>(x);
  uint32_t mag = u & kMagnitude;
  if (mag >= kInf) return x;
  if (mag < kMinNormal) return std::bit_cast<float>(u & kSign);
  if (m >= kLmulMaxMantissa) return x;
  const int drop = kLmulMaxMantissa - m;
  const uint32_t lsb = (mag >> drop) & 1u;
  // Nearest, ties to the even kept mantissa; a carry moves into the exponent (at the top, to infinity).
  mag = ((mag + (1u << (drop - 1)) - 1u + lsb) >> drop) << drop;
  return std::bit_cast<float>((u & kSign) | mag);
}

uint32_t lmul_bits(uint32_t x, uint32_t y, int m) {
  const uint32_t sign = (x ^ y) & kSign;
  const uint32_t ax = x & kMagnitude, ay = y & kMagnitude;
  if (ax >= kInf || ay >= kInf) {
    const bool nan = ax > kInf || ay > kInf || ax < kMinNormal || ay < kMinNormal;
    return nan ? kQuietNan : (sign | kInf);
  }
  if (ax < kMinNormal || ay < kMinNormal) return sign;
  // |x|bits + |y|bits − bias + 2^{23−l}: the exponents add, the mantissas add with the
  // offset, and a mantissa carry runs into the exponent. The sum of two finite
  // magnitudes is below 2^32, so it is compared unsigned before the bias comes off.
  const uint32_t bias = kOneBits - (1u << (kLmulMaxMantissa - lmul_offset_exponent(m)));
  const uint32_t sum = ax + ay;
  if (sum < bias + kMinNormal) return sign;    // biased exponent ≤ 0: flush to zero
  if (sum >= bias + kInf) return sign | kInf;  // biased exponent ≥ 255: infinity
  return sign | (sum - bias);
}

float lmul(float x, float y, int m) {
  return std::bit_cast<float>(lmul_bits(std::bit_cast<uint32_t>(lmul_round_operand(x, m)),
                                        std::bit_cast<uint32_t>(lmul_round_operand(y, m)), m));
}

LmulErrorBounds lmul_relative_error_bounds(int m) {
  const double c = std::ldexp(1.0, -lmul_offset_exponent(m));
  const double t = (1.0 - c) / 2.0;
  return {std::min(0.0, -(t * t - c) / ((1.0 + t) * (1.0 + t))), c};
}

float round_to_e4m3(float x) {
  constexpr float kMax = 448.0f;
  constexpr float kMinNormalE4m3 = 0x1.0p-6f;
  const float mag = std::fabs(x);
  if (!std::isfinite(x)) return x;
  if (mag > kMax) return std::copysign(kMax, x);
  // Subnormals: multiples of 2^-9, rounded to nearest even (x·2^9 is exact).
  if (mag < kMinNormalE4m3) return std::copysign(std::nearbyint(mag * 512.0f) / 512.0f, x);
  return lmul_round_operand(x, 3);  // normals: 3 mantissa bits, the same rounding
}

}  // namespace lowbit
