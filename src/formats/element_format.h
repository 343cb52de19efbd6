// Element formats: how one low-bit code maps to a real value. Every element
// format of lowbit (INTn, FP8/FP6/FP4 minifloats, E8M0/UE4M3/UE5M3 scale types,
// NF4 and user codebooks, posits, BF16/FP16) is described by one ElementFormat
// entry in the traits table (element_formats.cpp), with a scalar reference codec.
// Block/scaled formats (block_format.h) combine an element format with scales.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace lowbit {

enum class ElementKind {
  kInteger,    // two's complement or offset integers (symmetric or with zero point)
  kMinifloat,  // sign/exponent/mantissa floats (FP8, FP6, FP4, E8M0, UE4M3, BF16, FP16)
  kCodebook,   // a sorted table of levels (NF4, user codebooks)
  kPosit,      // posit(n, es), 2022 standard
};

class ElementCodec {
 public:
  virtual ~ElementCodec() = default;
  // Reference decode of a code in [0, 2^bits).
  virtual float decode(uint32_t code) const = 0;
  // Reference encode with round-to-nearest-even (ties to the even code / the
  // level with even index for codebooks); out-of-range values saturate to the
  // largest finite magnitude unless the format defines infinities; NaN maps to the
  // format's NaN code (or 0 where it has none).
  virtual uint32_t encode(float x) const = 0;
  // Stochastic rounding: rounds up with probability equal to the fractional
  // position between the two neighbouring representable values; `uniform` in [0,1).
  virtual uint32_t encode_stochastic(float x, float uniform) const = 0;
};

struct ElementFormat {
  std::string name;          // "fp8_e4m3", "int4", "nf4", "posit8_2", ...
  ElementKind kind;
  int bits;                  // bits per code
  bool is_signed;
  float max_finite;          // largest finite magnitude
  float min_positive;        // smallest positive value (subnormal if any)
  std::string description;   // range, layout and when it wins
  std::shared_ptr<const ElementCodec> codec;
};

// The traits table: every built-in element format.
const std::vector<ElementFormat>& element_formats();
// Lookup by name; error lists the known names.
Expected<const ElementFormat*> find_element_format(const std::string& name);

}  // namespace lowbit
