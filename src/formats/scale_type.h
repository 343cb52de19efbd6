// Scale types: the number formats block scales are stored in.
//   fp32   exact; 4 bytes
//   fp16   IEEE binary16, [2^-24, 65504]; 2 bytes (GPTQ/AWQ group scales)
//   bf16   float32's range, 8 significant bits; 2 bytes
//   e8m0   OCP MX shared scale: 2^(code-127), code 0..254, 0xFF = NaN; powers of two only
//   ue4m3  unsigned E4M3 (NVFP4 block scale), [2^-9, 448]; stored in 1 byte
//   e4m3   signed FP8 E4M3, +-448; 1 byte
//   ue5m3  unsigned E5M3, [2^-17, 114688]; 1 byte
// The 8-bit types use the element codecs of the same name (element_format.h).
// Encoding rounds to nearest even and saturates to the largest finite value, so a
// scale never becomes inf or NaN; negative values encode to the smallest code of
// the unsigned types.
#pragma once

#include <cstdint>

#include "core/status.h"

namespace lowbit {

enum class ScaleType { kFp32, kFp16, kBf16, kE8m0, kUe4m3, kE4m3, kUe5m3 };

// Bytes one scale code takes in storage.
constexpr int scale_type_bytes(ScaleType t) {
  return t == ScaleType::kFp32 ? 4 : (t == ScaleType::kFp16 || t == ScaleType::kBf16) ? 2 : 1;
}

const char* scale_type_name(ScaleType t);
bool scale_type_signed(ScaleType t);
// Largest finite value.
float scale_type_max(ScaleType t);
// Whether the type's codec is available (the 8-bit types need their element format).
Status check_scale_type(ScaleType t);
uint32_t encode_scale(ScaleType t, float v);
float decode_scale(ScaleType t, uint32_t code);
// Largest relative rounding error of encode_scale in the normal range,
// 2^-(mantissa bits + 1) (E8M0, rounding to powers of two: 1/3).
double scale_type_relative_error(ScaleType t);
// Range of k for which 2^k is exactly representable (E8M0: [-127, 127]); false
// for the types that do not hold powers of two over a useful range (FP8 ones).
bool scale_type_pow2_range(ScaleType t, int* k_min, int* k_max);

}  // namespace lowbit
