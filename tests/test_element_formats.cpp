// Exhaustive properties of every element format: each code decodes to its
// documented value and re-encodes to itself, codes are unique, encoding is
// monotone; the traits table and the factories' parameter checks.
#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "test_element_util.h"

namespace lowbit {
namespace {

using testing::element;
using testing::same_value;

std::vector<const ElementFormat*> all_formats() { return testing::all_test_formats(); }

TEST(ElementTable, HasTheIssueNamesAndUniqueNames) {
  for (const char* name : {"fp8_e4m3", "fp8_e5m2", "fp6_e2m3", "fp6_e3m2", "fp4_e2m1", "e8m0", "ue4m3", "ue5m3",
                           "nf4", "posit4_1", "posit8_0", "posit8_2", "posit16_1", "int2", "int3", "int4",
                           "int8", "int4_full", "uint4", "uint8", "bf16", "fp16"}) {
    auto f = find_element_format(name);
    ASSERT_TRUE(f.ok()) << name << ": " << f.status().message();
    EXPECT_EQ((*f)->name, name);
    EXPECT_NE((*f)->codec, nullptr);
    EXPECT_FALSE((*f)->description.empty());
  }
  std::set<std::string> names;
  for (const ElementFormat& f : element_formats()) EXPECT_TRUE(names.insert(f.name).second) << f.name;
}

TEST(ElementTable, UnknownNameListsKnownNames) {
  auto f = find_element_format("fp7_e9m9");
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("fp7_e9m9"), std::string::npos);
  EXPECT_NE(f.status().message().find("fp8_e4m3"), std::string::npos);
  EXPECT_NE(f.status().message().find("posit8_2"), std::string::npos);
}

// Range entries of the table: the documented numbers of each format's paragraph.
TEST(ElementTable, RangesAreTheDocumentedOnes) {
  struct Row {
    const char* name;
    int bits;
    bool is_signed;
    double max_finite;
    double min_positive;
  };
  const Row rows[] = {
      {"int2", 2, true, 1, 1},          {"int2_full", 2, true, 2, 1},      {"uint2", 2, false, 3, 1},
      {"int4", 4, true, 7, 1},          {"int4_full", 4, true, 8, 1},      {"uint4", 4, false, 15, 1},
      {"int8", 8, true, 127, 1},        {"int8_full", 8, true, 128, 1},    {"uint8", 8, false, 255, 1},
      {"fp8_e4m3", 8, true, 448, 0x1p-9}, {"fp8_e5m2", 8, true, 57344, 0x1p-16},
      {"fp6_e2m3", 6, true, 7.5, 0.125}, {"fp6_e3m2", 6, true, 28, 0.0625}, {"fp4_e2m1", 4, true, 6, 0.5},
      {"e8m0", 8, false, 0x1p127, 0x1p-127}, {"ue4m3", 7, false, 448, 0x1p-9},
      {"ue5m3", 8, false, 114688, 0x1p-17}, {"bf16", 16, true, 0x1.fep127, 0x1p-133},
      {"fp16", 16, true, 65504, 0x1p-24}, {"nf4", 4, true, 1.0, 0.07958029955625534},
      {"posit4_1", 4, true, 16, 1.0 / 16}, {"posit8_0", 8, true, 64, 1.0 / 64},
      {"posit8_1", 8, true, 0x1p12, 0x1p-12}, {"posit8_2", 8, true, 0x1p24, 0x1p-24},
      {"posit16_1", 16, true, 0x1p28, 0x1p-28}, {"posit16_2", 16, true, 0x1p56, 0x1p-56},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    const ElementFormat& f = element(r.name);
    EXPECT_EQ(f.bits, r.bits);
    EXPECT_EQ(f.is_signed, r.is_signed);
    EXPECT_EQ(f.max_finite, static_cast<float>(r.max_finite));
    EXPECT_EQ(f.min_positive, static_cast<float>(r.min_positive));
  }
}

// Every code that is not reserved decodes to a value that encodes back to it;
// NaN codes collapse to the canonical NaN; non-NaN values are unique.
TEST(ElementExhaustive, DecodeEncodeIsIdentityAndCodesAreUnique) {
  for (const ElementFormat* f : all_formats()) {
    SCOPED_TRACE(f->name);
    const ElementCodec& c = *f->codec;
    const uint32_t nan_code = c.encode(NAN);
    std::set<uint32_t> seen_bits;
    int reserved = 0;
    for (uint32_t code = 0; code < num_codes(*f); ++code) {
      const float v = c.decode(code);
      if (c.is_reserved(code)) {
        ++reserved;
        continue;
      }
      EXPECT_EQ(c.encode(v), code) << "code " << code << " value " << v;
      if (std::isnan(v)) {
        EXPECT_EQ(code, nan_code) << "only the canonical NaN is not reserved";
      } else {
        EXPECT_TRUE(seen_bits.insert(float_to_bits(v)).second) << "duplicate value " << v << " at code " << code;
      }
    }
    // The canonical NaN of a format without NaN is +0's code.
    if (!c.is_nan(nan_code)) {
      EXPECT_TRUE(same_value(c.decode(nan_code), c.decode(c.encode(0.0f))));
    }
    // Reserved codes are exactly the documented ones.
    int expected_reserved = 0;
    if (f->name == "fp8_e4m3" || f->name == "e5m2_sat") expected_reserved = 1;  // 0xFF (-NaN)
    // IEEE: 2 (2^M - 1) NaN codes, one of them canonical.
    if (f->name == "fp8_e5m2") expected_reserved = 2 * 3 - 1;
    if (f->name == "e4m3_ieee" || f->name == "e5m3_ieee") expected_reserved = 2 * 7 - 1;
    if (f->name == "bf16") expected_reserved = 2 * 127 - 1;
    if (f->name == "fp16") expected_reserved = 2 * 1023 - 1;
    if (f->kind == ElementKind::kInteger && std::get<IntSpec>(f->params).mode == IntMode::kSymmetricRestricted) {
      expected_reserved = 1;
    }
    if (f->name == "ternary") expected_reserved = 1;
    if (f->name == "k5") expected_reserved = 3;
    EXPECT_EQ(reserved, expected_reserved);
  }
}

TEST(ElementExhaustive, EncodingIsMonotoneOverADenseSweep) {
  using testing::key_value;
  using testing::value_key;
  // Every 4099th float32 in value order from -inf to +inf...
  std::vector<int64_t> sweep;
  for (int64_t key = testing::kMinusInfKey; key <= testing::kPlusInfKey; key += 4099) sweep.push_back(key);
  sweep.push_back(testing::kPlusInfKey);
  for (const ElementFormat* f : all_formats()) {
    SCOPED_TRACE(f->name);
    const ElementCodec& c = *f->codec;
    // ...plus each representable value and its 3 neighbours either side.
    std::vector<int64_t> near;
    for (uint32_t code = 0; code < num_codes(*f); ++code) {
      const float v = c.decode(code);
      if (!std::isfinite(v)) continue;
      for (int64_t d = -3; d <= 3; ++d) near.push_back(std::clamp(value_key(v) + d, testing::kMinusInfKey,
                                                                  testing::kPlusInfKey));
    }
    std::sort(near.begin(), near.end());
    std::vector<int64_t> keys(sweep.size() + near.size());
    std::merge(sweep.begin(), sweep.end(), near.begin(), near.end(), keys.begin());
    int64_t prev = INT64_MIN;
    float prev_x = 0;
    for (int64_t key : keys) {
      const float x = key_value(key);
      if (f->kind == ElementKind::kPosit && std::isinf(x)) continue;  // NaR, by the standard
      const float y = c.decode(c.encode(x));
      ASSERT_FALSE(std::isnan(y)) << "x = " << x;
      // Results in value order, -0 before +0.
      const int64_t order = value_key(y);
      ASSERT_GE(order, prev) << "encode not monotone between " << prev_x << " and " << x;
      prev = order;
      prev_x = x;
    }
  }
}

TEST(ElementValues, IntegersAreTwosComplementOrOffset) {
  for (const ElementFormat* f : all_formats()) {
    if (f->kind != ElementKind::kInteger) continue;
    SCOPED_TRACE(f->name);
    const auto& spec = std::get<IntSpec>(f->params);
    for (uint32_t code = 0; code < num_codes(*f); ++code) {
      const int32_t twos = static_cast<int32_t>(code << (32 - f->bits)) >> (32 - f->bits);
      const int32_t expected = spec.mode == IntMode::kAsymmetric ? static_cast<int32_t>(code) : twos;
      EXPECT_EQ(f->codec->decode(code), static_cast<float>(expected)) << code;
    }
  }
  const ElementCodec& int4 = *element("int4").codec;
  EXPECT_EQ(int4.encode(-8.0f), 0x9u) << "restricted int4 saturates at -7";
  EXPECT_EQ(int4.encode(-7.5f), 0x9u) << "-7.5 saturates to -7: -8 is reserved";
  EXPECT_EQ(element("int4_full").codec->encode(-8.0f), 0x8u);
  EXPECT_EQ(element("int4_full").codec->encode(-100.0f), 0x8u);
  EXPECT_EQ(element("uint4").codec->encode(-3.0f), 0u);
  EXPECT_EQ(element("uint4").codec->encode(15.5f), 15u);
}

TEST(ElementValues, Fp4E2M1IsTheOcpTable) {
  const float expected[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, -0.0f, -0.5f, -1, -1.5f, -2, -3, -4, -6};
  for (uint32_t c = 0; c < 16; ++c) EXPECT_TRUE(same_value(element("fp4_e2m1").codec->decode(c), expected[c])) << c;
}

TEST(ElementValues, Ue4m3IsE4m3WithoutTheSignBit) {
  const ElementCodec& ue = *element("ue4m3").codec;
  const ElementCodec& e4 = *element("fp8_e4m3").codec;
  for (uint32_t c = 0; c < 128; ++c) EXPECT_TRUE(same_value(ue.decode(c), e4.decode(c))) << c;
  EXPECT_TRUE(std::isnan(ue.decode(0x7f)));
  EXPECT_EQ(ue.encode(-3.0f), 0u) << "negative values go to the smallest code, 0";
  EXPECT_EQ(ue.encode(1e9f), 0x7eu) << "saturates at 448";
}

TEST(ElementValues, Ue5m3FollowsItsFormula) {
  const ElementCodec& c = *element("ue5m3").codec;
  for (uint32_t code = 0; code < 255; ++code) {
    const int e = static_cast<int>(code >> 3), m = static_cast<int>(code & 7);
    const double v = e == 0 ? std::ldexp(m, -17) : std::ldexp(8 + m, e - 18);
    EXPECT_EQ(c.decode(code), static_cast<float>(v)) << code;
  }
  EXPECT_TRUE(std::isnan(c.decode(0xff)));
}

TEST(ElementValues, Bf16AndFp16MatchCoreConversions) {
  const ElementCodec& bf = *element("bf16").codec;
  const ElementCodec& h = *element("fp16").codec;
  for (uint32_t code = 0; code < 65536; ++code) {
    EXPECT_TRUE(same_value(bf.decode(code), bf16_to_float(static_cast<uint16_t>(code)))) << code;
    EXPECT_TRUE(same_value(h.decode(code), fp16_to_float(static_cast<uint16_t>(code)))) << code;
  }
  // core/half.h encoders are an independent RNE implementation; they keep NaN
  // payloads, lowbit gives the canonical NaN, so compare non-NaN inputs.
  uint32_t state = 12345;
  for (int i = 0; i < 2000000; ++i) {
    state = state * 1664525u + 1013904223u;
    const float x = bits_to_float(state);
    if (std::isnan(x)) continue;
    ASSERT_EQ(bf.encode(x), float_to_bf16(x)) << x;
    ASSERT_EQ(h.encode(x), float_to_fp16(x)) << x;
  }
}

TEST(ElementValues, Nf4IsBitsandbytesTable) {
  const double expected[16] = {-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
                               -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
                               0.07958029955625534, 0.16093020141124725, 0.24611230194568634,
                               0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
                               0.7229568362236023, 1.0};
  const ElementCodec& c = *element("nf4").codec;
  for (uint32_t code = 0; code < 16; ++code) {
    // bitsandbytes stores float32; the printed doubles are those floats exactly.
    EXPECT_EQ(static_cast<double>(c.decode(code)), expected[code]) << code;
  }
  EXPECT_EQ(c.encode(NAN), 7u) << "NaN goes to the 0.0 level";
  EXPECT_EQ(c.encode(-0.0f), 7u);
  EXPECT_EQ(c.encode(5.0f), 15u);
  EXPECT_EQ(c.encode(-INFINITY), 0u);
}

// The nearest level with ties to even code, by brute force in double.
TEST(ElementValues, CodebooksAndIntsEncodeToTheNearestLevel) {
  for (const ElementFormat* f : all_formats()) {
    if (f->kind != ElementKind::kCodebook && f->kind != ElementKind::kInteger) continue;
    if (f->bits > 8) continue;
    SCOPED_TRACE(f->name);
    const ElementCodec& c = *f->codec;
    std::vector<std::pair<double, uint32_t>> levels;  // (value, code), usable codes
    for (uint32_t code = 0; code < num_codes(*f); ++code) {
      if (!c.is_reserved(code)) levels.emplace_back(c.decode(code), code);
    }
    std::sort(levels.begin(), levels.end());
    std::vector<float> xs;
    for (size_t i = 0; i + 1 < levels.size(); ++i) {
      const auto m = static_cast<float>((levels[i].first + levels[i + 1].first) / 2);
      xs.insert(xs.end(), {m, std::nextafter(m, -INFINITY), std::nextafter(m, INFINITY),
                           static_cast<float>(levels[i].first)});
    }
    uint32_t state = 99;
    for (int i = 0; i < 20000; ++i) {
      state = state * 1664525u + 1013904223u;
      xs.push_back((static_cast<float>(state >> 8) / 16777216.0f - 0.5f) * 3.0f * f->max_finite);
    }
    xs.insert(xs.end(), {0.0f, -0.0f});
    for (float x : xs) {
      uint32_t best = 0;
      double best_d = INFINITY;
      for (const auto& [v, code] : levels) {
        const double d = std::fabs(v - static_cast<double>(x));
        if (d < best_d || (d == best_d && (code & 1u) == 0)) {
          best = code;
          best_d = d;
        }
      }
      ASSERT_EQ(c.encode(x), best) << "x = " << x;
    }
  }
}

TEST(ElementFactories, RejectBadParameters) {
  EXPECT_FALSE(make_int_format(1, IntMode::kSymmetricFull).ok());
  EXPECT_FALSE(make_int_format(17, IntMode::kAsymmetric).ok());
  EXPECT_FALSE(make_posit_format(17, 1).ok());
  EXPECT_FALSE(make_posit_format(1, 0).ok());
  EXPECT_FALSE(make_posit_format(16, 4).ok()) << "maxpos 2^224 is beyond float32";
  EXPECT_FALSE(make_codebook_format("one", {1.0f}).ok());
  EXPECT_FALSE(make_codebook_format("unsorted", {0.0f, 2.0f, 1.0f}).ok());
  EXPECT_FALSE(make_codebook_format("dup", {0.0f, 1.0f, 1.0f}).ok());
  EXPECT_FALSE(make_codebook_format("nan", {0.0f, NAN}).ok());
  EXPECT_FALSE(make_codebook_format("big", std::vector<float>(257, 0.0f)).ok());
  EXPECT_FALSE(make_minifloat_format("e9m0", MinifloatSpec{9, 0, 127, false, false, MinifloatSpecials::kOneNan}).ok());
  EXPECT_FALSE(make_minifloat_format("e5m11", MinifloatSpec{5, 11, 15, true, true, MinifloatSpecials::kIeee}).ok());
  EXPECT_FALSE(make_minifloat_format("ieee_m0", MinifloatSpec{4, 0, 7, true, true, MinifloatSpecials::kIeee}).ok());
  EXPECT_FALSE(make_minifloat_format("huge_bias", MinifloatSpec{8, 3, 100, true, true, MinifloatSpecials::kOneNan}).ok());
  auto e = make_codebook_format("unsorted", {0.0f, 2.0f, 1.0f});
  EXPECT_NE(e.status().message().find("unsorted"), std::string::npos);
  EXPECT_EQ(make_posit_format(6, 3).value().name, "posit6_3");
  EXPECT_EQ(make_codebook_format("k3", {-1.0f, 0.0f, 2.0f}).value().bits, 2);
}

}  // namespace
}  // namespace lowbit
