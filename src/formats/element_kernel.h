// Bulk encode/decode of element codes: the fast path of every element format,
// bit for bit equal to the reference codec (element_format.h) for every float32
// input, NaN and -0 included (tests/test_element_kernel.cpp checks every ISA).
//
// Codes are stored one per byte for formats of at most 8 bits and one per
// uint16 for formats of 9..16 bits; packing sub-byte codes is the block layer's
// job. How each path works:
//   decode: a table of the reference decode of every code (2^bits floats); the
//     AVX-512 path permutes in registers for <= 32 codes and gathers otherwise.
//   encode of minifloats with subnormals (FP8/FP6/FP4, UE4M3, UE5M3, FP16, BF16):
//     integer round-to-nearest-even on the float32 bits, the subnormal range by
//     one float addition (this assumes the default MXCSR: round to nearest, no
//     DAZ); scalar on the generic path, 16 lanes on AVX-512.
//   encode of other formats of <= 8 bits (E8M0, NF4/codebooks, posits, and
//     integers on the generic path): a threshold table. The reference encoder is
//     a monotone step function of the input, so its breakpoints are found once by
//     bisection over the ordered float32 bit patterns and encode is a branchless
//     search on the input's ordered bits (in-register permutes for <= 16 steps,
//     gathers otherwise on AVX-512).
//   encode of integers on AVX-512: VRNDSCALE (ties to even) + clamp.
//   encode of other 16-bit formats (posit16, INT9..16 on the generic path): the
//     reference codec.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/status.h"
#include "formats/element_format.h"
#include "kernels/cpu_features.h"

namespace lowbit {

struct ElementKernelData;

class ElementKernel {
 public:
  // Builds the tables of `format` (at most 16 bits) for `isa`, which must be
  // supported by this CPU; AVX2 runs the generic path, the AVX-512 levels the
  // AVX-512 one.
  static Expected<ElementKernel> create(const ElementFormat& format, Isa isa);
  // The same for the process-wide ISA (active_isa()).
  static Expected<ElementKernel> create(const ElementFormat& format);

  // x: [n] floats -> codes: [n], one code per byte (formats of <= 8 bits).
  void encode(const float* x, uint8_t* codes, size_t n) const;
  // codes: [n], each < 2^bits -> y: [n].
  void decode(const uint8_t* codes, float* y, size_t n) const;
  // The same with one code per uint16 (any format of <= 16 bits).
  void encode(const float* x, uint16_t* codes, size_t n) const;
  void decode(const uint16_t* codes, float* y, size_t n) const;

  const ElementFormat& format() const;
  // The ISA whose code runs (generic or avx512).
  Isa isa() const;
  // "minifloat", "integer", "thresholds" or "reference": how encode works.
  const char* encode_method() const;

 private:
  explicit ElementKernel(std::shared_ptr<const ElementKernelData> data) : data_(std::move(data)) {}
  std::shared_ptr<const ElementKernelData> data_;
};

}  // namespace lowbit
