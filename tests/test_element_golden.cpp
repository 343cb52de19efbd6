// Golden encode tables: each row names its case (tie to even up / down, largest
// subnormal, smallest normal, overflow, NaN, -0, ...) with a hand-derived code.
// "Tie to even up/down" means the exact midpoint between two neighbours goes to
// the upper/lower one because that one has the even code.
// Overflow policy (documented in minifloat.cpp): IEEE formats (E5M2, BF16, FP16)
// overflow to inf from the midpoint past max finite; all others saturate.
#include "formats/element_kernel.h"
#include "test_element_util.h"

namespace lowbit {
namespace {

struct Golden {
  const char* format;
  const char* name;  // the case
  float x;
  uint32_t code;
};

const Golden kGolden[] = {
    // FP8 E4M3 (bias 7): 1.0 = 0x38, steps of 1/8 in [1, 2).
    {"fp8_e4m3", "tie to even up (1.125|1.25)", 1.1875f, 0x3A},
    {"fp8_e4m3", "tie to even down (1|1.125)", 1.0625f, 0x38},
    {"fp8_e4m3", "above a tie", 0x1.100002p0f, 0x39},
    {"fp8_e4m3", "smallest subnormal 2^-9", 0x1p-9f, 0x01},
    {"fp8_e4m3", "half the smallest subnormal: tie to 0", 0x1p-10f, 0x00},
    {"fp8_e4m3", "just above half the smallest subnormal", 0x1.000002p-10f, 0x01},
    {"fp8_e4m3", "subnormal tie to even up (1|2 x 2^-9)", 0x1.8p-9f, 0x02},
    {"fp8_e4m3", "largest subnormal 7/8 x 2^-6", 0.013671875f, 0x07},
    {"fp8_e4m3", "smallest normal 2^-6", 0x1p-6f, 0x08},
    {"fp8_e4m3", "max finite 448", 448.0f, 0x7E},
    {"fp8_e4m3", "overflow tie 464 (448|480) saturates", 464.0f, 0x7E},
    {"fp8_e4m3", "overflow saturates", 1000.0f, 0x7E},
    {"fp8_e4m3", "negative overflow saturates", -1e30f, 0xFE},
    {"fp8_e4m3", "+inf saturates", INFINITY, 0x7E},
    {"fp8_e4m3", "-inf saturates", -INFINITY, 0xFE},
    {"fp8_e4m3", "NaN", NAN, 0x7F},
    {"fp8_e4m3", "-NaN to the canonical NaN", -NAN, 0x7F},
    {"fp8_e4m3", "-0", -0.0f, 0x80},
    {"fp8_e4m3", "negative underflow keeps the sign", -1e-10f, 0x80},
    // FP8 E5M2 (bias 15): 1.0 = 0x3C, steps of 1/4.
    {"fp8_e5m2", "tie to even up (1.25|1.5)", 1.375f, 0x3E},
    {"fp8_e5m2", "tie to even down (1|1.25)", 1.125f, 0x3C},
    {"fp8_e5m2", "largest subnormal 3/4 x 2^-14", 0x1.8p-15f, 0x03},
    {"fp8_e5m2", "smallest normal 2^-14", 0x1p-14f, 0x04},
    {"fp8_e5m2", "smallest subnormal 2^-16", 0x1p-16f, 0x01},
    {"fp8_e5m2", "max finite 57344", 57344.0f, 0x7B},
    {"fp8_e5m2", "below the overflow tie", 0x1.dffffep15f, 0x7B},
    {"fp8_e5m2", "overflow tie 61440 to inf (even)", 61440.0f, 0x7C},
    {"fp8_e5m2", "overflow to inf", 1e6f, 0x7C},
    {"fp8_e5m2", "negative overflow to -inf", -1e6f, 0xFC},
    {"fp8_e5m2", "+inf", INFINITY, 0x7C},
    {"fp8_e5m2", "NaN (quiet)", NAN, 0x7E},
    {"fp8_e5m2", "-0", -0.0f, 0x80},
    // FP6 E2M3 (bias 1): subnormals k/8, 1.0 = 0x08, max 7.5.
    {"fp6_e2m3", "tie to even up (1.125|1.25)", 1.1875f, 0x0A},
    {"fp6_e2m3", "tie to even down (1|1.125)", 1.0625f, 0x08},
    {"fp6_e2m3", "largest subnormal 0.875", 0.875f, 0x07},
    {"fp6_e2m3", "smallest normal 1.0", 1.0f, 0x08},
    {"fp6_e2m3", "max finite 7.5", 7.5f, 0x1F},
    {"fp6_e2m3", "overflow saturates", 100.0f, 0x1F},
    {"fp6_e2m3", "negative overflow saturates", -100.0f, 0x3F},
    {"fp6_e2m3", "+inf saturates", INFINITY, 0x1F},
    {"fp6_e2m3", "NaN to +0 (no NaN code)", NAN, 0x00},
    {"fp6_e2m3", "-0", -0.0f, 0x20},
    // FP6 E3M2 (bias 3): subnormals k/16, 1.0 = 0x0C, max 28.
    {"fp6_e3m2", "tie to even up (1.25|1.5)", 1.375f, 0x0E},
    {"fp6_e3m2", "tie to even down (1|1.25)", 1.125f, 0x0C},
    {"fp6_e3m2", "largest subnormal 0.1875", 0.1875f, 0x03},
    {"fp6_e3m2", "smallest normal 0.25", 0.25f, 0x04},
    {"fp6_e3m2", "max finite 28", 28.0f, 0x1F},
    {"fp6_e3m2", "overflow saturates", 1000.0f, 0x1F},
    {"fp6_e3m2", "NaN to +0 (no NaN code)", NAN, 0x00},
    {"fp6_e3m2", "-0", -0.0f, 0x20},
    // FP4 E2M1: {0, 0.5, 1, 1.5, 2, 3, 4, 6}.
    {"fp4_e2m1", "tie to even up (1.5|2)", 1.75f, 0x4},
    {"fp4_e2m1", "tie to even up (3|4)", 3.5f, 0x6},
    {"fp4_e2m1", "tie to even down (2|3)", 2.5f, 0x4},
    {"fp4_e2m1", "tie to even down (4|6)", 5.0f, 0x6},
    {"fp4_e2m1", "tie to even down (0|0.5)", 0.25f, 0x0},
    {"fp4_e2m1", "tie to even up (0.5|1)", 0.75f, 0x2},
    {"fp4_e2m1", "largest subnormal 0.5", 0.5f, 0x1},
    {"fp4_e2m1", "smallest normal 1.0", 1.0f, 0x2},
    {"fp4_e2m1", "max finite 6", 6.0f, 0x7},
    {"fp4_e2m1", "overflow saturates", 7.0f, 0x7},
    {"fp4_e2m1", "negative overflow saturates", -100.0f, 0xF},
    {"fp4_e2m1", "NaN to +0 (no NaN code)", NAN, 0x0},
    {"fp4_e2m1", "-0", -0.0f, 0x8},
    // E8M0: 2^(code - 127), no zero, no sign, 0xFF NaN.
    {"e8m0", "tie to even up (1|2)", 1.5f, 0x80},
    {"e8m0", "tie to even down (2|4)", 3.0f, 0x80},
    {"e8m0", "above a tie", 0x1.800002p1f, 0x81},
    {"e8m0", "1.0", 1.0f, 0x7F},
    {"e8m0", "smallest value 2^-127 (no subnormals)", 0x1p-127f, 0x00},
    {"e8m0", "below the smallest value", 1e-45f, 0x00},
    {"e8m0", "zero to the smallest value", 0.0f, 0x00},
    {"e8m0", "-0 to the smallest value", -0.0f, 0x00},
    {"e8m0", "negative to the smallest value", -4.0f, 0x00},
    {"e8m0", "max 2^127", 0x1p127f, 0xFE},
    {"e8m0", "overflow saturates", 3.4e38f, 0xFE},
    {"e8m0", "+inf saturates", INFINITY, 0xFE},
    {"e8m0", "NaN", NAN, 0xFF},
    // UE4M3: E4M3 without its sign bit.
    {"ue4m3", "tie to even up (1.125|1.25)", 1.1875f, 0x3A},
    {"ue4m3", "tie to even down (1|1.125)", 1.0625f, 0x38},
    {"ue4m3", "largest subnormal", 0.013671875f, 0x07},
    {"ue4m3", "smallest normal", 0x1p-6f, 0x08},
    {"ue4m3", "overflow saturates", 1000.0f, 0x7E},
    {"ue4m3", "NaN", NAN, 0x7F},
    {"ue4m3", "-0 to 0", -0.0f, 0x00},
    {"ue4m3", "negative to 0", -1.0f, 0x00},
    // UE5M3 (bias 15): 1.0 = 0x78.
    {"ue5m3", "tie to even up (1.125|1.25)", 1.1875f, 0x7A},
    {"ue5m3", "tie to even down (1|1.125)", 1.0625f, 0x78},
    {"ue5m3", "largest subnormal 7 x 2^-17", 0x1.cp-15f, 0x07},
    {"ue5m3", "smallest normal 2^-14", 0x1p-14f, 0x08},
    {"ue5m3", "max finite 114688", 114688.0f, 0xFE},
    {"ue5m3", "overflow saturates", 1e6f, 0xFE},
    {"ue5m3", "NaN", NAN, 0xFF},
    {"ue5m3", "-0 to 0", -0.0f, 0x00},
    // BF16: 1.0 = 0x3F80, steps of 2^-7.
    {"bf16", "tie to even up", 1.01171875f, 0x3F82},
    {"bf16", "tie to even down", 1.00390625f, 0x3F80},
    {"bf16", "largest subnormal", 0x1.fcp-127f, 0x007F},
    {"bf16", "smallest normal 2^-126", 0x1p-126f, 0x0080},
    {"bf16", "max finite", 0x1.fep127f, 0x7F7F},
    {"bf16", "overflow to inf (FLT_MAX rounds up)", 3.4028235e38f, 0x7F80},
    {"bf16", "NaN (quiet)", NAN, 0x7FC0},
    {"bf16", "-0", -0.0f, 0x8000},
    // FP16: 1.0 = 0x3C00, steps of 2^-10.
    {"fp16", "tie to even up", 1.00146484375f, 0x3C02},
    {"fp16", "tie to even down", 1.00048828125f, 0x3C00},
    {"fp16", "largest subnormal", 0x1.ff8p-15f, 0x03FF},
    {"fp16", "smallest normal 2^-14", 0x1p-14f, 0x0400},
    {"fp16", "max finite 65504", 65504.0f, 0x7BFF},
    {"fp16", "below the overflow tie", 65519.996f, 0x7BFF},
    {"fp16", "overflow tie 65520 to inf", 65520.0f, 0x7C00},
    {"fp16", "NaN (quiet)", NAN, 0x7E00},
    {"fp16", "-0", -0.0f, 0x8000},
    // Integers: round half to even, saturate, NaN -> 0.
    {"int4", "tie to even up (3|4)", 3.5f, 0x4},
    {"int4", "tie to even down (2|3)", 2.5f, 0x2},
    {"int4", "negative tie to even (-3|-2)", -2.5f, 0xE},
    {"int4", "overflow saturates at 7", 100.0f, 0x7},
    {"int4", "negative overflow saturates at -7 (restricted)", -100.0f, 0x9},
    {"int4", "NaN to 0", NAN, 0x0},
    {"int4", "-0 to 0", -0.0f, 0x0},
    {"int4_full", "negative overflow saturates at -8", -100.0f, 0x8},
    {"int4_full", "tie 7.5 saturates at 7", 7.5f, 0x7},
    {"int4_full", "tie to even up (-8|-7)", -7.5f, 0x8},
    {"uint4", "tie to even up (3|4)", 3.5f, 0x4},
    {"uint4", "tie to even down (2|3)", 2.5f, 0x2},
    {"uint4", "overflow saturates at 15", 15.5f, 0xF},
    {"uint4", "negative saturates at 0", -3.0f, 0x0},
    {"uint4", "NaN to 0", NAN, 0x0},
    {"int8", "tie to even up (125|126)", 125.5f, 0x7E},
    {"int8", "tie to even down (126|127)", 126.5f, 0x7E},
    {"int8", "overflow saturates at 127", 1000.0f, 0x7F},
    {"int8", "negative overflow saturates at -127", -1000.0f, 0x81},
    {"int8", "NaN to 0", NAN, 0x00},
    // Posits (rounding on the bit string, see test_element_posit.cpp).
    {"posit8_0", "tie to even down (1|1+1/32)", 1.015625f, 0x40},
    {"posit8_0", "tie to even up (1+1/32|1+2/32)", 1.046875f, 0x42},
    {"posit8_0", "maxpos 64", 64.0f, 0x7F},
    {"posit8_0", "overflow saturates at maxpos", 1000.0f, 0x7F},
    {"posit8_0", "negative overflow saturates at -maxpos", -1000.0f, 0x81},
    {"posit8_0", "underflow to minpos, never 0", 1e-10f, 0x01},
    {"posit8_0", "NaN to NaR", NAN, 0x80},
    {"posit8_0", "-0 to 0", -0.0f, 0x00},
    {"posit4_1", "tie to even down (4|16 at 8)", 8.0f, 0x6},
    {"posit4_1", "tie to even up (1/2|1 at 3/4)", 0.75f, 0x4},
    {"posit4_1", "overflow saturates at 16", 1e9f, 0x7},
    {"posit4_1", "underflow to minpos 1/16", 1e-9f, 0x1},
    {"posit4_1", "NaN to NaR", NAN, 0x8},
    {"posit8_2", "tie to even down (2^20|2^24 at 2^22)", 0x1p22f, 0x7E},
    {"posit8_2", "bit-string rounding: 144179.2 to 2^18", 144179.2f, 0x7D},
    {"posit8_2", "overflow saturates at 2^24", 1e30f, 0x7F},
    {"posit8_2", "underflow to -minpos", -1e-30f, 0xFF},
    {"posit8_2", "NaN to NaR", NAN, 0x80},
    {"posit16_1", "tie to even down (1|1+2^-12)", 0x1.0008p0f, 0x4000},
    {"posit16_1", "tie to even up (1+2^-12|1+2^-11)", 0x1.0018p0f, 0x4002},
    {"posit16_1", "maxpos 2^28", 0x1p28f, 0x7FFF},
    {"posit16_1", "overflow saturates", 1e30f, 0x7FFF},
    {"posit16_1", "NaN to NaR", NAN, 0x8000},
    {"posit16_1", "-0 to 0", -0.0f, 0x0000},
};

TEST(ElementGolden, NamedCasesEncodeToTheirCodes) {
  for (const Golden& g : kGolden) {
    const ElementFormat& f = testing::element(g.format);
    EXPECT_EQ(f.codec->encode(g.x), g.code) << g.format << " / " << g.name << ": x = " << g.x;
  }
}

TEST(ElementGolden, FastKernelsAgreeOnTheNamedCases) {
  for (Isa isa : {Isa::kGeneric, Isa::kAvx512}) {
    if (!isa_supported(isa, detect_cpu_features())) continue;
    for (const Golden& g : kGolden) {
      auto k = ElementKernel::create(testing::element(g.format), isa);
      ASSERT_TRUE(k.ok()) << k.status().message();
      uint16_t code = 0xFFFF;
      k->encode(&g.x, &code, 1);
      EXPECT_EQ(code, g.code) << isa_name(isa) << " " << g.format << " / " << g.name;
    }
  }
}

// Every documented case appears for every format it applies to.
TEST(ElementGolden, EachFormatHasTheRequiredCases) {
  for (const char* format : {"fp8_e4m3", "fp8_e5m2", "fp6_e2m3", "fp6_e3m2", "fp4_e2m1", "ue4m3", "ue5m3", "bf16",
                             "fp16", "e8m0", "int4", "uint4", "int8", "posit8_0", "posit4_1", "posit8_2",
                             "posit16_1"}) {
    const bool has_subnormals = std::string(format).rfind("fp", 0) == 0 || std::string(format).rfind("ue", 0) == 0 ||
                                std::string(format) == "bf16";
    std::vector<std::string> required{"tie to even", "overflow", "NaN"};
    if (has_subnormals) required.insert(required.end(), {"largest subnormal", "smallest normal", "-0"});
    for (const std::string& what : required) {
      bool found = false;
      for (const Golden& g : kGolden) found |= g.format == std::string(format) && std::string(g.name).find(what) != std::string::npos;
      EXPECT_TRUE(found) << format << " lacks a golden row for '" << what << "'";
    }
  }
}

}  // namespace
}  // namespace lowbit
