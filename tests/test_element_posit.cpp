// Posits against a second implementation written here from the 2022 Posit
// Standard's definitions, plus published values.
//
// Decode: the standard's formula on the raw bits (no two's complement):
//   x = ((1 - 3s) + f) * 2^((1 - 2s) (2^es r + e + s)),
// with s the sign bit, r the regime value, e the exponent bits and f the
// fraction read left to right from the bit string.
// Encode: the standard rounds the exact value's bit string to n bits, ties to
// even. Between two adjacent n-bit posits the rounding threshold is therefore the
// (n+1)-bit posit that lies between them (the n-bit code followed by a 1 bit),
// and beyond [minpos, maxpos] the result saturates (never 0, never NaR).
#include <algorithm>
#include <random>
#include <string>

#include "test_element_util.h"

namespace lowbit {
namespace {

using testing::element;

// The standard's decoding of an n-bit pattern (n <= 31), in double.
double standard_decode(uint32_t code, int n, int es) {
  if (code == 0) return 0.0;
  if (code == (1u << (n - 1))) return NAN;
  std::string bits;
  for (int i = n - 1; i >= 0; --i) bits += ((code >> i) & 1u) ? '1' : '0';
  const int s = bits[0] - '0';
  const std::string body = bits.substr(1);
  const char r0 = body[0];
  const size_t run = std::min(body.find_first_not_of(r0), body.size());
  const int r = r0 == '1' ? static_cast<int>(run) - 1 : -static_cast<int>(run);
  std::string rest = run + 1 < body.size() ? body.substr(run + 1) : "";
  std::string e_bits = rest.substr(0, std::min<size_t>(es, rest.size()));
  const std::string f_bits = rest.size() > static_cast<size_t>(es) ? rest.substr(es) : "";
  while (e_bits.size() < static_cast<size_t>(es)) e_bits += '0';
  int e = 0;
  for (char c : e_bits) e = 2 * e + (c - '0');
  double f = 0.0, w = 0.5;
  for (char c : f_bits) {
    if (c == '1') f += w;
    w /= 2;
  }
  return ((1 - 3 * s) + f) * std::ldexp(1.0, (1 - 2 * s) * ((1 << es) * r + e + s));
}

// The standard's rounding, by the (n+1)-bit thresholds.
class StandardEncoder {
 public:
  StandardEncoder(int n, int es) : n_(n), es_(es) {
    for (uint32_t c = 1; c < (1u << (n - 1)); ++c) positive_.push_back(standard_decode(c, n, es));
  }
  uint32_t encode(double x) const {
    const uint32_t nar = 1u << (n_ - 1);
    if (std::isnan(x) || std::isinf(x)) return nar;
    if (x == 0.0) return 0;
    const uint32_t p = encode_positive(std::fabs(x));
    return x < 0 ? ((1u << n_) - p) & ((1u << n_) - 1u) : p;
  }

 private:
  uint32_t encode_positive(double a) const {
    const uint32_t maxpos = static_cast<uint32_t>(positive_.size());  // code of the last entry
    if (a >= positive_.back()) return maxpos;
    if (a <= positive_.front()) return 1;
    // positive_[i] is code i + 1; find c with v(c) <= a < v(c + 1).
    const size_t i = static_cast<size_t>(std::upper_bound(positive_.begin(), positive_.end(), a) -
                                         positive_.begin()) - 1;
    const uint32_t c = static_cast<uint32_t>(i + 1);
    if (a == positive_[i]) return c;
    const double threshold = standard_decode(2 * c + 1, n_ + 1, es_);
    if (a < threshold) return c;
    if (a > threshold) return c + 1;
    return (c & 1u) == 0 ? c : c + 1;
  }

  int n_, es_;
  std::vector<double> positive_;  // values of codes 1 .. maxpos, increasing
};

std::vector<std::pair<int, int>> posit_params() {
  std::vector<std::pair<int, int>> out;
  for (int n = 2; n <= 16; ++n) {
    for (int es = 0; es <= 3; ++es) {
      if ((1 << es) * (n - 2) <= 120) out.emplace_back(n, es);
    }
  }
  return out;
}

TEST(ElementPosit, DecodeMatchesTheStandardFormulaForEveryCode) {
  for (auto [n, es] : posit_params()) {
    SCOPED_TRACE(::testing::Message() << "posit(" << n << "," << es << ")");
    const ElementFormat f = make_posit_format(n, es).value();
    for (uint32_t code = 0; code < (1u << n); ++code) {
      const double expected = standard_decode(code, n, es);
      const float got = f.codec->decode(code);
      if (std::isnan(expected)) {
        ASSERT_TRUE(std::isnan(got)) << code;
      } else {
        ASSERT_EQ(static_cast<double>(got), expected) << "code " << code;
      }
    }
  }
}

TEST(ElementPosit, EncodeMatchesTheStandardRoundingAtEveryThreshold) {
  std::mt19937 rng(7);
  for (auto [n, es] : posit_params()) {
    SCOPED_TRACE(::testing::Message() << "posit(" << n << "," << es << ")");
    const ElementFormat f = make_posit_format(n, es).value();
    const StandardEncoder oracle(n, es);
    std::vector<float> xs{0.0f, -0.0f, NAN, INFINITY, -INFINITY, 1e-38f, -1e-38f, 3e38f, -3e38f, 1e-45f};
    // Every threshold between adjacent posits (the (n+1)-bit midpoints), its
    // float neighbours, and every posit value.
    for (uint32_t c = 0; c < (1u << n); ++c) {
      const float v = f.codec->decode(c);
      if (std::isnan(v)) continue;
      xs.push_back(v);
      const auto t = static_cast<float>(standard_decode(2 * c + 1, n + 1, es));
      if (std::isnan(t)) continue;
      xs.insert(xs.end(), {t, std::nextafter(t, -INFINITY), std::nextafter(t, INFINITY)});
    }
    std::uniform_real_distribution<double> log_range(-(1 << es) * (n - 1.0), (1 << es) * (n - 1.0));
    for (int i = 0; i < 2000; ++i) {
      const auto x = static_cast<float>(std::exp2(log_range(rng)));
      xs.push_back(i % 2 ? x : -x);
    }
    for (float x : xs) ASSERT_EQ(f.codec->encode(x), oracle.encode(x)) << "x = " << x;
  }
}

TEST(ElementPosit, PublishedValues) {
  const ElementCodec& p8 = *element("posit8_0").codec;
  EXPECT_EQ(p8.decode(0x40), 1.0f);
  EXPECT_EQ(p8.decode(0x7F), 64.0f) << "maxpos";
  EXPECT_EQ(p8.decode(0x01), 1.0f / 64) << "minpos";
  EXPECT_TRUE(std::isnan(p8.decode(0x80))) << "NaR";
  EXPECT_EQ(p8.decode(0x60), 2.0f);
  EXPECT_EQ(p8.decode(0x50), 1.5f);
  EXPECT_EQ(p8.decode(0xC0), -1.0f);
  EXPECT_EQ(p8.decode(0xFF), -1.0f / 64);
  const ElementCodec& p82 = *element("posit8_2").codec;
  EXPECT_EQ(p82.decode(0x7F), 0x1p24f);
  EXPECT_EQ(p82.decode(0x01), 0x1p-24f);
  EXPECT_EQ(p82.decode(0x40), 1.0f);
  EXPECT_EQ(element("posit16_1").codec->decode(0x7FFF), 0x1p28f);
  EXPECT_EQ(element("posit16_1").codec->decode(0x4000), 1.0f);
  const float p4[8] = {0, 1.0f / 16, 0.25f, 0.5f, 1, 2, 4, 16};
  for (uint32_t c = 0; c < 8; ++c) EXPECT_EQ(element("posit4_1").codec->decode(c), p4[c]) << c;
}

TEST(ElementPosit, RoundingIsOnTheBitStringAndSaturates) {
  const ElementCodec& p82 = *element("posit8_2").codec;
  // 144179.2 lies between 2^16 (0x7C) and 2^18 (0x7D), nearer 2^16 by value, but
  // beyond the 9-bit threshold 2^17: the standard rounds it to 2^18.
  EXPECT_EQ(p82.encode(144179.2f), 0x7Du);
  EXPECT_EQ(p82.encode(0x1p22f), 0x7Eu) << "tie between 2^20 and 2^24 goes to the even code";
  EXPECT_EQ(p82.encode(0x1.000002p22f), 0x7Fu);
  EXPECT_EQ(p82.encode(1e30f), 0x7Fu) << "no overflow to NaR";
  EXPECT_EQ(p82.encode(-1e30f), 0x81u);
  EXPECT_EQ(p82.encode(1e-30f), 0x01u) << "no underflow to zero";
  EXPECT_EQ(p82.encode(-1e-30f), 0xFFu);
  EXPECT_EQ(p82.encode(NAN), 0x80u);
  EXPECT_EQ(p82.encode(INFINITY), 0x80u) << "the standard converts infinities to NaR";
  EXPECT_EQ(p82.encode(-0.0f), 0x00u);
}

}  // namespace
}  // namespace lowbit
