// Integer element formats INT2..INT16.
//
// Range and layout: a b-bit code holds an integer value; the block layer turns
// it into a real number with a scale (and a zero point for the asymmetric mode).
//   - symmetric restricted ("int4": [-7, 7]): two's complement codes, the code
//     -2^(b-1) (0x8 for int4) is reserved: encode never produces it, decode gives
//     -2^(b-1) so that sign-extending kernels agree. The grid is symmetric about
//     zero, negation is exact, and absmax/(2^(b-1)-1) maps the largest weight
//     exactly onto a code (llama.cpp Q8_0, most INT8 weight schemes, MXINT8).
//     This is what the plain names "int2".."int8" mean.
//   - symmetric full ("int4_full": [-8, 7]): two's complement, every code used;
//     one more level on the negative side (llama.cpp Q4_0 style).
//   - asymmetric ("uint4": [0, 15]): the code is the value; used with a zero
//     point so that a skewed range [min, max] spends all 2^b levels (GPTQ/AWQ
//     with zero points, llama.cpp Q4_1).
// When it wins: uniform grids are optimal for roughly uniform data and after
// rotations (QuaRot/SpinQuant), and integer dot products are the cheapest on
// every CPU (VNNI); INT8 per-channel is near lossless for weights.
// Encoding: round half to even, saturate to [min, max]; NaN encodes to 0.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "formats/element_format.h"

namespace lowbit {
namespace {

class IntCodec final : public ElementCodec {
 public:
  explicit IntCodec(const IntSpec& spec) : spec_(spec), mask_((1u << spec.bits) - 1u) {}

  float decode(uint32_t code) const override { return static_cast<float>(value_of(code & mask_)); }

  uint32_t encode(float x) const override { return encode_impl(x, -1.0f); }
  uint32_t encode_stochastic(float x, float uniform) const override { return encode_impl(x, uniform); }

  bool is_reserved(uint32_t code) const override {
    const int64_t v = value_of(code & mask_);
    return v < spec_.min_value || v > spec_.max_value;
  }

 private:
  int64_t value_of(uint32_t code) const {
    if (spec_.mode == IntMode::kAsymmetric) return code;
    const uint32_t sign_bit = 1u << (spec_.bits - 1);
    return (code & sign_bit) ? static_cast<int64_t>(code) - (int64_t{1} << spec_.bits) : code;
  }
  uint32_t code_of(int64_t value) const { return static_cast<uint32_t>(value) & mask_; }

  // uniform < 0: round half to even; otherwise stochastic rounding.
  uint32_t encode_impl(float x, float uniform) const {
    if (std::isnan(x)) return 0;
    const double v = x;
    if (v <= spec_.min_value) return code_of(spec_.min_value);
    if (v >= spec_.max_value) return code_of(spec_.max_value);
    const double lo = std::floor(v);
    const auto q = static_cast<int64_t>(lo);
    if (uniform >= 0.0f) return stochastic_pick(v, lo, code_of(q), lo + 1.0, code_of(q + 1), uniform);
    const double frac = v - lo;  // exact: |v| < 2^16
    return code_of(frac > 0.5 || (frac == 0.5 && (q & 1) != 0) ? q + 1 : q);
  }

  IntSpec spec_;
  uint32_t mask_;
};

}  // namespace

Expected<ElementFormat> make_int_format(int bits, IntMode mode) {
  if (bits < 2 || bits > 16) {
    return make_error("integer element format: bits must be in [2, 16], got {}", bits);
  }
  IntSpec spec;
  spec.bits = bits;
  spec.mode = mode;
  const int half = 1 << (bits - 1);
  std::string name;
  std::string what;
  switch (mode) {
    case IntMode::kSymmetricRestricted:
      spec.min_value = -(half - 1);
      spec.max_value = half - 1;
      name = fmt::format("int{}", bits);
      what = "symmetric restricted, two's complement, code -2^(b-1) unused";
      break;
    case IntMode::kSymmetricFull:
      spec.min_value = -half;
      spec.max_value = half - 1;
      name = fmt::format("int{}_full", bits);
      what = "symmetric full range, two's complement";
      break;
    case IntMode::kAsymmetric:
      spec.min_value = 0;
      spec.max_value = (1 << bits) - 1;
      name = fmt::format("uint{}", bits);
      what = "unsigned, used with a zero point";
      break;
  }
  ElementFormat f;
  f.name = name;
  f.kind = ElementKind::kInteger;
  f.bits = bits;
  f.is_signed = mode != IntMode::kAsymmetric;
  f.max_finite = static_cast<float>(std::max(-spec.min_value, spec.max_value));
  f.min_positive = 1.0f;
  f.description = fmt::format("INT{} [{}, {}], {}", bits, spec.min_value, spec.max_value, what);
  f.codec = std::make_shared<IntCodec>(spec);
  f.params = spec;
  return f;
}

}  // namespace lowbit
