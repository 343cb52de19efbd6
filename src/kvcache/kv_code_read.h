// Reading one element of a KV unit in place (kv_fused_attention.h): its code
// from the LSB-first bit stream, and its group's FP16 scale and zero point.
// Shared by the scalar reference and the AVX-512 kernels.
#pragma once

#include <cstdint>

#include "core/half.h"
#include "kvcache/kv_fused_attention.h"

namespace lowbit {

// The `bits`-bit code (bits <= 8) starting at bit `bit` of the stream: element
// e sits at bits [e · bits, (e + 1) · bits), byte k holding stream bits 8k..8k+7.
inline uint32_t read_code(const uint8_t* stream, int64_t bit, int bits) {
  const uint8_t* b = stream + (bit >> 3);
  const int shift = static_cast<int>(bit & 7);
  const uint32_t word = shift + bits > 8 ? (b[0] | (static_cast<uint32_t>(b[1]) << 8)) : b[0];
  return (word >> shift) & ((1u << bits) - 1u);
}

inline float unit_scale_code(const uint8_t* unit, int64_t at) {
  return fp16_to_float(static_cast<uint16_t>(unit[at] | (unit[at + 1] << 8)));
}
// Scale and zero point of group g of a unit: FP16 [n_groups] after the codes, then FP16 [n_groups].
inline float unit_scale(const KvCodeLayout& l, const uint8_t* unit, int64_t g) {
  return unit_scale_code(unit, l.code_bytes + 2 * g);
}
inline float unit_zero(const KvCodeLayout& l, const uint8_t* unit, int64_t g) {
  return unit_scale_code(unit, l.code_bytes + 2 * (l.n_groups + g));
}

}  // namespace lowbit
