// Internal to the block formats (block_quantize.cpp, block_kernels*.cpp): the
// per-ISA loops around the element codes. The element step itself (float ->
// code -> float) is ElementKernel's (element_kernel.h) or the reference codec's;
// these kernels do what the block layer adds: per-group statistics, the affine
// map into the element's range and back, and bit packing. Each works on one row
// segment of n values cut into groups of G (the last one partial) with one scale
// per group. Every variant gives the same bits as the scalar one
// (tests/test_block_formats.cpp).
#pragma once

#include <cstdint>

#include "kernels/cpu_features.h"

namespace lowbit {

// Group g of a segment: y = clamp(x / scale[g], lo, hi), or
// clamp((x - offset[g]) / scale[g], lo, hi) when asymmetric, where the clamp is
// `y < lo ? lo : (y > hi ? hi : y)` (it keeps the sign of zero); scale[g] == 0
// gives y = +0. Back: v * scale[g], or v * scale[g] + offset[g] (two roundings,
// never an FMA).
struct GroupMaps {
  const float* scale = nullptr;   // [groups]
  const float* offset = nullptr;  // [groups], asymmetric only
  float lo = 0.0f;
  float hi = 0.0f;
  bool asymmetric = false;
};

struct ScaleKernels {
  const char* name;
  // amax[g] = max |x| over group g (n >= 1); false when a value is NaN or infinite.
  bool (*group_abs_max)(const float* x, int64_t n, int64_t group, float* amax);
  // mn[g], mx[g] over group g; false when a value is NaN or infinite.
  bool (*group_min_max)(const float* x, int64_t n, int64_t group, float* mn, float* mx);
  void (*to_element)(const float* x, int64_t n, int64_t group, const GroupMaps& m, float* y);
  void (*from_element)(const float* v, int64_t n, int64_t group, const GroupMaps& m, float* out);
  // LSB-first bit stream of n codes of `bits` (1..16) bits into
  // row_code_bytes(bits, n) bytes, the unused high bits of the last byte zero.
  void (*pack)(const uint16_t* codes, int64_t n, int bits, uint8_t* dst);
  void (*unpack)(const uint8_t* src, int64_t n, int bits, uint16_t* codes);
};

// Portable C++: the reference loops, and the generic path.
const ScaleKernels& scalar_scale_kernels();
// AVX-512 F/BW/VL/DQ + BMI2 (block_kernels_avx512.cpp); call only where supported.
const ScaleKernels& avx512_scale_kernels();
// The kernels that run for `isa` (AVX2 runs the generic ones).
const ScaleKernels& scale_kernels(Isa isa);

}  // namespace lowbit
