// The ml_dtypes oracle (PyPI ml_dtypes, fixtures written by
// scripts/gen_format_fixtures.py into tests/data/formats/): decode tables of
// every code and encodes of a stratified set of float32 inputs (every value,
// every tie and its neighbours, subnormal boundaries, overflow, NaN, +-0, random).
//
// Where lowbit's documented policy differs from ml_dtypes the test asserts
// lowbit's value and counts the case, so the fixture provably covers it:
//   - overflow in "fn" formats: ml_dtypes float8_e4m3fn / float8_e8m0fnu give NaN;
//     lowbit saturates to +-max finite (OCP MX allows it, CUDA __NV_SATFINITE does it).
//   - NaN input to finite-only FP6/FP4: ml_dtypes gives -0 or 0 (no NaN code), lowbit +0.
//   - NaN input elsewhere: any NaN code from ml_dtypes, lowbit's canonical one.
//   - E8M0 of 0 or a negative number: ml_dtypes NaN, lowbit the smallest code (2^-127).
//   - E8M0 ties 1.5 * 2^k: ml_dtypes rounds up, lowbit to the even exponent field.
//   - E8M0 of float32 subnormals in (2^-127, 2^-126): ml_dtypes rounds all of them
//     up to 2^-126, lowbit to the nearest (2^-127 below 1.5 * 2^-127).
#include <map>

#include "test_element_util.h"

namespace lowbit {
namespace {

using testing::element;
using testing::read_hex_pairs;
using testing::same_value;

TEST(ElementOracle, DecodeTablesMatchMlDtypes) {
  for (const char* name : {"fp8_e4m3", "fp8_e5m2", "fp6_e2m3", "fp6_e3m2", "fp4_e2m1", "e8m0"}) {
    SCOPED_TRACE(name);
    const ElementFormat& f = element(name);
    const auto rows = read_hex_pairs(std::string(name) + ".decode");
    ASSERT_EQ(rows.size(), num_codes(f));
    for (const auto& [code, bits] : rows) {
      EXPECT_TRUE(same_value(f.codec->decode(code), bits_to_float(bits)))
          << "code " << code << ": lowbit " << f.codec->decode(code) << ", ml_dtypes " << bits_to_float(bits);
    }
  }
}

// UE4M3 has no ml_dtypes type: it is E4M3's non-negative half, code for code.
TEST(ElementOracle, Ue4m3DecodesLikeMlDtypesE4m3) {
  const auto rows = read_hex_pairs("fp8_e4m3.decode");
  const ElementCodec& ue = *element("ue4m3").codec;
  for (const auto& [code, bits] : rows) {
    if (code < 0x80) {
      EXPECT_TRUE(same_value(ue.decode(code), bits_to_float(bits))) << code;
    }
  }
}

struct Deviations {
  std::map<std::string, int> counts;  // documented case -> how many fixture rows
};

// The code lowbit must give for x when ml_dtypes gave `oracle`; names the
// documented deviation in `why` (empty when lowbit must equal the oracle).
uint32_t expected_code(const ElementFormat& f, float x, uint32_t oracle, std::string* why) {
  const ElementCodec& c = *f.codec;
  why->clear();
  if (std::isnan(x)) {
    *why = "NaN input";
    return c.encode(NAN);  // canonical NaN / +0, checked separately below
  }
  const bool oracle_nan = c.is_nan(oracle);
  if (f.name == "e8m0") {
    if (!(x > 0.0f)) {
      *why = "e8m0 of zero or negative";
      return 0;
    }
    // Float32 subnormals between 2^-127 and 2^-126: ml_dtypes rounds them all up.
    if (x > 0x1p-127f && x < 0x1p-126f) {
      *why = "e8m0 of a float32 subnormal";
      return x > 0x1.8p-127f ? 1 : 0;  // the tie 1.5 * 2^-127 goes to the even field 0
    }
    // Exact ties 1.5 * 2^k between two powers of two: ties to the even field.
    int e;
    const double m = std::frexp(static_cast<double>(x), &e);  // x = m 2^e, m in [0.5, 1)
    if (m == 0.75 && e - 1 >= -127 && e - 1 < 127) {
      *why = "e8m0 tie";
      const uint32_t lo = static_cast<uint32_t>(e - 1 + 127);
      return (lo & 1u) == 0 ? lo : lo + 1;
    }
  }
  if (oracle_nan) {
    *why = "overflow saturates";
    const uint32_t max_code = c.encode(f.max_finite);
    return std::signbit(x) && f.is_signed ? c.encode(-f.max_finite) : max_code;
  }
  return oracle;
}

TEST(ElementOracle, EncodeMatchesMlDtypesOnStratifiedInputs) {
  std::map<std::string, std::map<std::string, int>> deviations;
  for (const char* name : {"fp8_e4m3", "fp8_e5m2", "fp6_e2m3", "fp6_e3m2", "fp4_e2m1", "e8m0", "bf16", "fp16"}) {
    SCOPED_TRACE(name);
    const ElementFormat& f = element(name);
    const auto rows = read_hex_pairs(std::string(name) + ".encode");
    ASSERT_GT(rows.size(), 5000u);
    int failures = 0;
    for (const auto& [xbits, oracle] : rows) {
      const float x = bits_to_float(xbits);
      std::string why;
      const uint32_t expected = expected_code(f, x, oracle, &why);
      const uint32_t got = f.codec->encode(x);
      if (!why.empty()) ++deviations[name][why];
      if (got != expected && failures++ < 10) {
        ADD_FAILURE() << "x = " << x << " (0x" << std::hex << xbits << "): lowbit 0x" << got << ", expected 0x"
                      << expected << ", ml_dtypes 0x" << oracle << std::dec << (why.empty() ? "" : " [" + why + "]");
      }
      if (std::isnan(x) && f.name != "fp6_e2m3" && f.name != "fp6_e3m2" && f.name != "fp4_e2m1") {
        EXPECT_TRUE(f.codec->is_nan(oracle)) << "ml_dtypes keeps NaN";
      }
    }
    EXPECT_EQ(failures, 0);
  }
  // The documented deviations occur in the fixtures (so the policies are tested).
  EXPECT_GT(deviations["fp8_e4m3"]["overflow saturates"], 10);
  EXPECT_EQ(deviations["fp8_e5m2"]["overflow saturates"], 0) << "E5M2 overflows to inf like ml_dtypes";
  EXPECT_GT(deviations["e8m0"]["overflow saturates"], 5);
  EXPECT_GT(deviations["e8m0"]["e8m0 tie"], 100);
  EXPECT_GT(deviations["e8m0"]["e8m0 of zero or negative"], 1000);
  EXPECT_GT(deviations["e8m0"]["e8m0 of a float32 subnormal"], 5);
  for (const char* name : {"fp6_e2m3", "fp6_e3m2", "fp4_e2m1", "bf16", "fp16"}) {
    EXPECT_EQ(deviations[name]["overflow saturates"], 0) << name;
  }
}

}  // namespace
}  // namespace lowbit
