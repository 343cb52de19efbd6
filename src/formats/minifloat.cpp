// Minifloats: sign / exponent / mantissa formats of up to 16 bits.
//
// Layout: [sign][E exponent bits][M mantissa bits], value (-1)^s 2^(e-bias) (1 + m/2^M)
// for a nonzero exponent field e and (-1)^s 2^(1-bias) (m/2^M) for e = 0 (subnormals).
// Formats without a sign bit (E8M0, UE4M3, UE5M3) are unsigned scale types; E8M0
// has no zero and no subnormals: its zero field is the binade 2^-127.
// What the top exponent field means is the special-value policy:
//   - IEEE (E5M2, FP16, BF16): all-ones exponent is inf (m = 0) or NaN.
//   - "fn" one NaN (E4M3, E8M0, UE4M3, UE5M3): only the all-ones magnitude is NaN,
//     no infinities, so the top binade holds finite numbers (E4M3 max 448).
//   - finite only (OCP MX v1.0 FP6 E2M3/E3M2, FP4 E2M1): no inf, no NaN.
// Range: FP8 E4M3 [2^-9, 448], E5M2 [2^-16, 57344], FP6 E2M3 [0.125, 7.5],
// E3M2 [0.0625, 28], FP4 E2M1 {0, 0.5, 1, 1.5, 2, 3, 4, 6}, E8M0 [2^-127, 2^127],
// UE4M3 [2^-9, 448], UE5M3 [2^-17, 114688], FP16 [2^-24, 65504], BF16 float32's range.
// When it wins: the log-spaced grid matches bell-shaped weights and heavy-tailed
// activations better than INT at 8 bits (E4M3 for weights/activations, E5M2 for
// gradients); FP4/FP6 are the MX/NVFP4 element types with hardware support on
// Blackwell; E8M0/UE4M3/UE5M3 are the block scale types of MX and NVFP4.
//
// Encoding (reference): exact round to nearest, ties to the even code, computed in
// double (every float32 and every minifloat value is exact there).
// Overflow policy: IEEE formats follow IEEE 754 (a value whose rounding with an
// unbounded exponent exceeds the largest finite number becomes inf, as ml_dtypes
// and CUDA __NV_NOSAT do); "fn" and finite-only formats saturate to +-max finite,
// infinities included (the OCP MX v1.0 spec allows saturation; CUDA __NV_SATFINITE
// does the same; ml_dtypes' float8_e4m3fn/e8m0fnu instead return NaN).
// Unsigned formats encode negative numbers and -0 to their smallest code.
// NaN encodes to the canonical NaN (positive, quiet: 0x7E for E5M2, 0x7F for
// E4M3, 0xFF for E8M0) or to +0 for finite-only formats.
// E8M0 has no mantissa, so "ties to even code" means a value 1.5 * 2^k goes to
// the even exponent field (ml_dtypes rounds these ties up instead).
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "formats/element_format.h"

namespace lowbit {
namespace {

class MinifloatCodec final : public ElementCodec {
 public:
  explicit MinifloatCodec(const MinifloatSpec& s) : s_(s) {
    mag_bits_ = s.exponent_bits + s.mantissa_bits;
    sign_bit_ = s.has_sign ? (1u << mag_bits_) : 0u;
    mag_mask_ = (1u << mag_bits_) - 1u;
    const uint32_t top_field = (1u << s.exponent_bits) - 1u;
    switch (s.specials) {
      case MinifloatSpecials::kIeee:
        max_mag_ = (top_field << s.mantissa_bits) - 1u;
        inf_code_ = top_field << s.mantissa_bits;
        nan_code_ = inf_code_ | (1u << (s.mantissa_bits - 1));
        break;
      case MinifloatSpecials::kOneNan:
        max_mag_ = mag_mask_ - 1u;
        nan_code_ = mag_mask_;
        break;
      case MinifloatSpecials::kFiniteOnly:
        max_mag_ = mag_mask_;
        break;
    }
    emin_ = s.has_subnormals ? 1 - s.bias : -s.bias;
  }

  // Value of a magnitude code (no sign), including codes past max_mag_ read as
  // if the exponent range continued.
  double magnitude(int64_t mag) const {
    const int64_t field = mag >> s_.mantissa_bits;
    const int64_t frac = mag & ((int64_t{1} << s_.mantissa_bits) - 1);
    if (s_.has_subnormals && field == 0) {
      return std::ldexp(static_cast<double>(frac), 1 - s_.bias - s_.mantissa_bits);
    }
    return std::ldexp(static_cast<double>((int64_t{1} << s_.mantissa_bits) + frac),
                      static_cast<int>(field) - s_.bias - s_.mantissa_bits);
  }

  float decode(uint32_t code) const override {
    const uint32_t mag = code & mag_mask_;
    const bool negative = (code & sign_bit_) != 0;
    float v;
    if (s_.specials == MinifloatSpecials::kIeee && mag >= inf_code_) {
      v = mag == inf_code_ ? std::numeric_limits<float>::infinity()
                           : std::numeric_limits<float>::quiet_NaN();
    } else if (s_.specials == MinifloatSpecials::kOneNan && mag == nan_code_) {
      v = std::numeric_limits<float>::quiet_NaN();
    } else {
      v = static_cast<float>(magnitude(mag));
    }
    return negative ? -v : v;
  }

  uint32_t encode(float x) const override { return encode_impl(x, -1.0f); }
  uint32_t encode_stochastic(float x, float uniform) const override { return encode_impl(x, uniform); }

  bool is_reserved(uint32_t code) const override {
    return is_nan(code) && code != nan_code_;
  }

 private:
  // uniform < 0: round to nearest even; otherwise stochastic rounding.
  uint32_t encode_impl(float x, float uniform) const {
    if (std::isnan(x)) return nan_code_;
    const bool negative = std::signbit(x);
    if (negative && !s_.has_sign) return 0;  // smallest code: +0, or 2^-127 for E8M0
    const uint32_t sign = negative ? sign_bit_ : 0u;
    const double a = std::fabs(static_cast<double>(x));
    if (std::isinf(a)) {
      return sign | (s_.specials == MinifloatSpecials::kIeee ? inf_code_ : max_mag_);
    }
    if (a == 0.0) return sign;  // E8M0 (no zero) lands on its smallest code, 0, too
    int e = std::ilogb(a);
    if (e < emin_) {
      if (!s_.has_subnormals) return sign;  // below the smallest value, which is code 0
      e = emin_;                            // subnormal binade
    }
    // a = (lo_int + rem) * 2^(e - M), 0 <= rem < 1, all exact in double.
    const double q = std::ldexp(a, s_.mantissa_bits - e);
    const double lo_int = std::floor(q);
    const double rem = q - lo_int;
    // Magnitude codes are consecutive integers in value order, so the code of
    // lo_int in binade e is field(e) * 2^M + lo_int - 2^M (the subnormal case
    // e = emin has field 1 and lo_int < 2^M, which gives lo_int itself).
    const int64_t lo_code = (static_cast<int64_t>(e + s_.bias) << s_.mantissa_bits) +
                            static_cast<int64_t>(lo_int) - (int64_t{1} << s_.mantissa_bits);
    int64_t mag;
    if (uniform < 0.0f || lo_code >= static_cast<int64_t>(max_mag_)) {
      mag = lo_code + ((rem > 0.5 || (rem == 0.5 && (lo_code & 1) != 0)) ? 1 : 0);
    } else {
      mag = static_cast<double>(uniform) < rem ? lo_code + 1 : lo_code;
    }
    if (mag > static_cast<int64_t>(max_mag_)) {
      return sign | (s_.specials == MinifloatSpecials::kIeee ? inf_code_ : max_mag_);
    }
    return sign | static_cast<uint32_t>(mag);
  }

  MinifloatSpec s_;
  int mag_bits_ = 0;
  uint32_t sign_bit_ = 0;
  uint32_t mag_mask_ = 0;
  uint32_t max_mag_ = 0;    // largest finite magnitude code
  uint32_t inf_code_ = 0;   // IEEE only
  uint32_t nan_code_ = 0;   // canonical NaN, or +0 for finite-only formats
  int emin_ = 0;            // exponent of the lowest binade
};

}  // namespace

Expected<ElementFormat> make_minifloat_format(const std::string& name, const MinifloatSpec& spec,
                                              const std::string& description) {
  const int total = spec.exponent_bits + spec.mantissa_bits + (spec.has_sign ? 1 : 0);
  if (spec.exponent_bits < 1 || spec.exponent_bits > 8 || spec.mantissa_bits < 0 ||
      spec.mantissa_bits > 10 || total < 2 || total > 16) {
    return make_error("minifloat '{}': need 1..8 exponent bits, 0..10 mantissa bits, 2..16 bits in all "
                      "(got E{}M{}, {} bits)", name, spec.exponent_bits, spec.mantissa_bits, total);
  }
  if (spec.specials == MinifloatSpecials::kIeee && spec.mantissa_bits == 0) {
    return make_error("minifloat '{}': IEEE specials need at least one mantissa bit", name);
  }
  if (spec.specials == MinifloatSpecials::kFiniteOnly && !spec.has_subnormals) {
    return make_error("minifloat '{}': a format without subnormals must reserve a NaN code", name);
  }
  auto codec = std::make_shared<MinifloatCodec>(spec);
  // Range check: the smallest value must be a float32 (sub)normal multiple of
  // 2^-149, the largest finite binade at most 2^127.
  const int emin = spec.has_subnormals ? 1 - spec.bias : -spec.bias;
  const int top_field = (1 << spec.exponent_bits) - 1;
  const bool top_is_special = spec.specials == MinifloatSpecials::kIeee ||
                              (spec.specials == MinifloatSpecials::kOneNan && spec.mantissa_bits == 0);
  const int emax = (top_is_special ? top_field - 1 : top_field) - spec.bias;
  if (emin - spec.mantissa_bits < -149 || emax > 127) {
    return make_error("minifloat '{}': bias {} puts values outside float32's range (2^{}..2^{})", name, spec.bias,
                      emin - spec.mantissa_bits, emax);
  }
  ElementFormat f;
  f.name = name;
  f.kind = ElementKind::kMinifloat;
  f.bits = total;
  f.is_signed = spec.has_sign;
  // Largest finite magnitude and smallest positive value, read back from the codec.
  float max_value = 0.0f;
  float min_value = std::numeric_limits<float>::infinity();
  const uint32_t mag_codes = 1u << (spec.exponent_bits + spec.mantissa_bits);
  for (uint32_t c = 0; c < mag_codes; ++c) {
    const float v = codec->decode(c);
    if (std::isfinite(v) && v > max_value) max_value = v;
    if (v > 0.0f && v < min_value) min_value = v;
  }
  f.max_finite = max_value;
  f.min_positive = min_value;
  f.description = description.empty()
                      ? fmt::format("E{}M{} bias {}, max {:g}", spec.exponent_bits, spec.mantissa_bits,
                                    spec.bias, max_value)
                      : description;
  f.codec = std::move(codec);
  f.params = spec;
  return f;
}

}  // namespace lowbit
