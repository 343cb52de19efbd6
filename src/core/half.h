// IEEE binary16 and bfloat16 <-> binary32 conversions (scalar reference).
#pragma once

#include <cstdint>
#include <cstring>

namespace lowbit {

inline float bits_to_float(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline uint32_t float_to_bits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return bits;
}

// Exact: every binary16 value is representable in binary32.
inline float fp16_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0) {
    if (mantissa == 0) return bits_to_float(sign);
    // Subnormal: value = mantissa * 2^-24.
    float v = static_cast<float>(mantissa) * (1.0f / 16777216.0f);
    return sign ? -v : v;
  }
  if (exponent == 31) return bits_to_float(sign | 0x7f800000u | (mantissa << 13));
  return bits_to_float(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

// Round to nearest even, overflow to infinity, NaN kept quiet.
inline uint16_t float_to_fp16(float f) {
  const uint32_t x = float_to_bits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0));
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds past 65504
  if (abs < 0x38800000u) {
    // Result is subnormal or zero: value / 2^-24 rounded to nearest even.
    const float scaled = bits_to_float(abs) * 16777216.0f;  // exact (power of two)
    const uint32_t lower = static_cast<uint32_t>(scaled);
    const float rest = scaled - static_cast<float>(lower);
    uint32_t m = lower;
    if (rest > 0.5f || (rest == 0.5f && (lower & 1u))) ++m;
    return static_cast<uint16_t>(sign | m);
  }
  const uint32_t round_bit = 0x1000u;
  const uint32_t mantissa_odd = (abs >> 13) & 1u;
  const uint32_t rounded = abs + (round_bit - 1) + mantissa_odd;
  return static_cast<uint16_t>(sign | ((rounded - 0x38000000u) >> 13));
}

inline float bf16_to_float(uint16_t b) { return bits_to_float(static_cast<uint32_t>(b) << 16); }

// A 2-byte scale code that is BF16 when `bf16`, else FP16 (the packed layouts' group scales).
inline float half_code_to_float(uint16_t code, bool bf16) { return bf16 ? bf16_to_float(code) : fp16_to_float(code); }

inline uint16_t float_to_bf16(float f) {
  uint32_t x = float_to_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet NaN
  x += 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>(x >> 16);
}

}  // namespace lowbit
