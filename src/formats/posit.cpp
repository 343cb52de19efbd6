// Posits posit(n, es), n <= 16, after the 2022 Standard for Posit Arithmetic
// (which fixes es = 2; other es values follow the same rules, as in the original
// Gustafson-Yonemoto definition).
//
// Layout: an n-bit two's complement word. 0...0 is zero, 10...0 is NaR (Not a
// Real, our NaN). For a positive word the bits after the sign are a regime run of
// m identical bits ended by the opposite bit (or by the end of the word): k = m-1
// for a run of ones, k = -m for a run of zeros; then up to es exponent bits e
// (missing bits are zero) and the remaining bits as fraction f. The value is
// 2^(k 2^es + e) (1 + f). A negative word is the two's complement of its magnitude.
// Range: maxpos = 2^(2^es (n-2)), minpos = 1/maxpos: posit8_0 [1/64, 64],
// posit8_2 [2^-24, 2^24], posit16_1 [2^-28, 2^28], posit4_1 [1/16, 16].
// When it wins: tapered precision (most fraction bits near 1, fewer far away)
// suits normalised weights and activations that cluster around magnitude 1, with
// a wider dynamic range than a float of the same size; proposed for edge hardware.
//
// Encoding follows the standard: the exact value's (unbounded) posit bit string is
// rounded to n bits, round to nearest, ties to even on the bit string. This is not
// always the arithmetically nearest posit where exponent bits are cut off (in
// posit8_2, 2^22 is the tie between 2^20 and 2^24); the threshold between two
// adjacent n-bit posits is the (n+1)-bit posit between them. Never overflows to
// NaR or underflows to zero: |x| > maxpos gives maxpos, 0 < |x| < minpos gives
// minpos. NaN and +-inf encode to NaR; +-0 to 0. Stochastic rounding picks between
// the adjacent posits with probability linear in the distance (unbiased inside
// [minpos, maxpos]; outside it saturates like RNE).
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "formats/element_format.h"

namespace lowbit {
namespace {

constexpr int kFloatFractionBits = 23;

class PositCodec final : public ElementCodec {
 public:
  explicit PositCodec(const PositSpec& spec)
      : n_(spec.n),
        es_(spec.es),
        mask_((1u << spec.n) - 1u),
        nar_(1u << (spec.n - 1)),
        maxpos_code_((1u << (spec.n - 1)) - 1u),
        max_scale_((1 << spec.es) * (spec.n - 2)) {}

  float decode(uint32_t code) const override {
    code &= mask_;
    if (code == 0) return 0.0f;
    if (code == nar_) return std::numeric_limits<float>::quiet_NaN();
    if (code & nar_) return static_cast<float>(-positive_value((~code + 1u) & mask_));
    return static_cast<float>(positive_value(code));
  }

  uint32_t encode(float x) const override { return encode_impl(x, -1.0f); }
  uint32_t encode_stochastic(float x, float uniform) const override { return encode_impl(x, uniform); }

 private:
  // Value of a positive code in (0, NaR).
  double positive_value(uint32_t p) const {
    int pos = n_ - 2;  // bit index of the first regime bit
    const uint32_t first = (p >> pos) & 1u;
    int run = 0;
    while (pos >= 0 && ((p >> pos) & 1u) == first) {
      ++run;
      --pos;
    }
    --pos;  // the terminating bit, if any
    const int k = first ? run - 1 : -run;
    const int rest_bits = pos + 1 > 0 ? pos + 1 : 0;
    const uint32_t rest = p & ((1u << rest_bits) - 1u);
    const int e_bits = rest_bits < es_ ? rest_bits : es_;
    const int f_bits = rest_bits - e_bits;
    const int e = static_cast<int>(rest >> f_bits) << (es_ - e_bits);
    const uint32_t f = rest & ((1u << f_bits) - 1u);
    return std::ldexp(1.0 + std::ldexp(static_cast<double>(f), -f_bits), k * (1 << es_) + e);
  }

  // uniform < 0: round to nearest even; otherwise stochastic rounding.
  uint32_t encode_impl(float x, float uniform) const {
    if (!std::isfinite(x)) return nar_;
    if (x == 0.0f) return 0;
    const double a = std::fabs(static_cast<double>(x));
    uint32_t p;
    if (a >= std::ldexp(1.0, max_scale_)) {
      p = maxpos_code_;
    } else if (a <= std::ldexp(1.0, -max_scale_)) {
      p = 1;  // minpos
    } else {
      // a = 2^scale (1 + frac / 2^23) exactly: a is a float.
      int exp2;
      const double m = std::frexp(a, &exp2);
      const int scale = exp2 - 1;
      const auto frac = static_cast<uint64_t>(std::ldexp(2.0 * m - 1.0, kFloatFractionBits));
      const int useed_log = 1 << es_;
      const int k = scale >= 0 ? scale / useed_log : -((-scale + useed_log - 1) / useed_log);
      const int e = scale - k * useed_log;
      // The unbounded bit string after the sign: regime, exponent, fraction.
      uint64_t regime;
      int regime_len;
      if (k >= 0) {
        regime = ((uint64_t{1} << (k + 1)) - 1) << 1;  // k+1 ones, then a zero
        regime_len = k + 2;
      } else {
        regime = 1;  // -k zeros, then a one
        regime_len = -k + 1;
      }
      const int len = regime_len + es_ + kFloatFractionBits;
      const uint64_t bits = (regime << (es_ + kFloatFractionBits)) |
                            (static_cast<uint64_t>(e) << kFloatFractionBits) | frac;
      // |x| in (minpos, maxpos) keeps the regime within the n-1 bits, and len > n-1.
      const int cut = len - (n_ - 1);
      p = static_cast<uint32_t>(bits >> cut);
      const uint64_t rem = bits & ((uint64_t{1} << cut) - 1);
      const uint64_t half = uint64_t{1} << (cut - 1);
      if (uniform < 0.0f) {
        if (rem > half || (rem == half && (p & 1u) != 0)) ++p;
      } else {
        p = stochastic_pick(a, positive_value(p), p, positive_value(p + 1), p + 1, uniform);
      }
    }
    return std::signbit(x) ? (~p + 1u) & mask_ : p;
  }

  int n_;
  int es_;
  uint32_t mask_;
  uint32_t nar_;
  uint32_t maxpos_code_;
  int max_scale_;  // log2(maxpos)
};

}  // namespace

Expected<ElementFormat> make_posit_format(int n, int es) {
  if (n < 2 || n > 16 || es < 0) {
    return make_error("posit({}, {}): need 2 <= n <= 16 and es >= 0", n, es);
  }
  if (es > 7 || (1 << es) * (n - 2) > 127) {
    return make_error("posit({}, {}): maxpos 2^(2^es (n-2)) exceeds float32's range (needs 2^es (n-2) <= 127)",
                      n, es);
  }
  PositSpec spec{n, es};
  const int max_scale = (1 << es) * (n - 2);
  ElementFormat f;
  f.name = fmt::format("posit{}_{}", n, es);
  f.kind = ElementKind::kPosit;
  f.bits = n;
  f.is_signed = true;
  f.max_finite = std::ldexp(1.0f, max_scale);
  f.min_positive = std::ldexp(1.0f, -max_scale);
  f.description = fmt::format("posit({}, {}): tapered precision, range [2^-{}, 2^{}], NaR for NaN", n, es,
                              max_scale, max_scale);
  f.codec = std::make_shared<PositCodec>(spec);
  f.params = spec;
  return f;
}

}  // namespace lowbit
