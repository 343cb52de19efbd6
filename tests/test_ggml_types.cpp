// Tests for the GGUF type traits table and its reference dequantizers:
//  * the table's block geometry and names;
//  * bit-exact agreement with gguf-py (llama.cpp's numpy reference) on committed
//    fixtures (scripts/gen_ggml_fixtures.py), from aligned and misaligned sources;
//  * hand-built golden blocks that name what they check.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/half.h"
#include "io/ggml_types.h"
#include "test_util.h"

namespace lowbit {
namespace {

uint32_t id(GgmlType t) { return static_cast<uint32_t>(t); }

// --- Traits table ---------------------------------------------------------------

struct Geometry {
  GgmlType type;
  const char* name;
  int64_t block_size;
  size_t bytes_per_block;
};

// Sizes from the GGUF spec / ggml-common.h, written out independently of the table.
constexpr Geometry kExpectedGeometry[] = {
    {GgmlType::F32, "f32", 1, 4},        {GgmlType::F16, "f16", 1, 2},
    {GgmlType::BF16, "bf16", 1, 2},      {GgmlType::Q4_0, "q4_0", 32, 18},
    {GgmlType::Q4_1, "q4_1", 32, 20},    {GgmlType::Q5_0, "q5_0", 32, 22},
    {GgmlType::Q5_1, "q5_1", 32, 24},    {GgmlType::Q8_0, "q8_0", 32, 34},
    {GgmlType::Q2_K, "q2_K", 256, 84},   {GgmlType::Q3_K, "q3_K", 256, 110},
    {GgmlType::Q4_K, "q4_K", 256, 144},  {GgmlType::Q5_K, "q5_K", 256, 176},
    {GgmlType::Q6_K, "q6_K", 256, 210},  {GgmlType::IQ4_NL, "iq4_nl", 32, 18},
};

TEST(GgmlTraits, BlockGeometryMatchesSpec) {
  for (const Geometry& g : kExpectedGeometry) {
    SCOPED_TRACE(g.name);
    const GgmlTypeTraits* t = find_ggml_type(id(g.type));
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->type, g.type);
    EXPECT_STREQ(t->name, g.name);
    EXPECT_EQ(t->block_size, g.block_size);
    EXPECT_EQ(t->bytes_per_block, g.bytes_per_block);
    EXPECT_NE(t->dequantize, nullptr);
    EXPECT_EQ(ggml_type_name(id(g.type)), g.name);
  }
}

TEST(GgmlTraits, UnsupportedIdsReturnNull) {
  // q4_2/q4_3 (removed), q8_1/q8_K (activation-only), i-quants but iq4_nl,
  // integers, f64, repacked layouts, mxfp4, and ids past the end.
  const uint32_t unsupported[] = {4, 5, 9, 15, 16, 17, 18, 19, 21, 22, 23, 24, 25, 26,
                                  27, 28, 29, 31, 34, 35, 39, 40, 41, 42, 1000, 0xFFFFFFFFu};
  for (uint32_t type_id : unsupported) {
    EXPECT_EQ(find_ggml_type(type_id), nullptr) << "type id " << type_id;
  }
}

TEST(GgmlTypeName, NamesUndecodableAndUnknownIds) {
  EXPECT_EQ(ggml_type_name(0), "f32");
  EXPECT_EQ(ggml_type_name(4), "q4_2");
  EXPECT_EQ(ggml_type_name(9), "q8_1");
  EXPECT_EQ(ggml_type_name(10), "q2_K");
  EXPECT_EQ(ggml_type_name(15), "q8_K");
  EXPECT_EQ(ggml_type_name(16), "iq2_xxs");
  EXPECT_EQ(ggml_type_name(20), "iq4_nl");
  EXPECT_EQ(ggml_type_name(23), "iq4_xs");
  EXPECT_EQ(ggml_type_name(28), "f64");
  EXPECT_EQ(ggml_type_name(29), "iq1_m");
  EXPECT_EQ(ggml_type_name(30), "bf16");
  EXPECT_EQ(ggml_type_name(35), "tq2_0");
  EXPECT_EQ(ggml_type_name(39), "mxfp4");
  EXPECT_EQ(ggml_type_name(42), "type#42");
  EXPECT_EQ(ggml_type_name(0xFFFFFFFFu), "type#4294967295");
}

// --- Helpers ----------------------------------------------------------------------

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

constexpr float kGuard = 12345.678f;  // written past the output to catch overruns

// Dequantizes `n_blocks` blocks of `raw`, copied to byte offset `misalign` of a fresh
// buffer; returns the floats plus `n_guard` trailing guard values that must survive.
std::vector<float> run_dequantize(const GgmlTypeTraits& t, const std::vector<uint8_t>& raw,
                                  int64_t n_blocks, size_t misalign, size_t n_guard = 0) {
  std::vector<uint8_t> src(raw.size() + misalign);
  std::memcpy(src.data() + misalign, raw.data(), raw.size());
  std::vector<float> out(static_cast<size_t>(n_blocks * t.block_size) + n_guard, kGuard);
  t.dequantize(src.data() + misalign, out.data(), n_blocks);
  return out;
}

// Index of the first element whose float bits differ, or -1.
int64_t first_bit_mismatch(const float* a, const float* b, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (float_to_bits(a[i]) != float_to_bits(b[i])) return static_cast<int64_t>(i);
  }
  return -1;
}

std::string describe(float v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.9g (0x%08x)", v, float_to_bits(v));
  return buf;
}

// --- gguf-py oracle -----------------------------------------------------------------

struct OracleCase {
  GgmlType type;
  const char* file;  // tests/data/ggml_blocks/<file>.{bin,f32}
};

class GgmlOracle : public ::testing::TestWithParam<OracleCase> {};

TEST_P(GgmlOracle, BitExactWithGgufPy) {
  const OracleCase& c = GetParam();
  const GgmlTypeTraits* t = find_ggml_type(id(c.type));
  ASSERT_NE(t, nullptr);
  const std::string base = testing::source_path(std::string("tests/data/ggml_blocks/") + c.file);
  const std::vector<uint8_t> raw = read_bytes(base + ".bin");
  const std::vector<uint8_t> expected_bytes = read_bytes(base + ".f32");
  ASSERT_FALSE(raw.empty()) << "missing fixture " << base << ".bin";
  ASSERT_EQ(raw.size() % t->bytes_per_block, 0u);
  const int64_t n_blocks = static_cast<int64_t>(raw.size() / t->bytes_per_block);
  const size_t n = static_cast<size_t>(n_blocks * t->block_size);
  ASSERT_EQ(expected_bytes.size(), n * sizeof(float)) << base << ".f32 does not match .bin";
  std::vector<float> expected(n);
  std::memcpy(expected.data(), expected_bytes.data(), expected_bytes.size());

  constexpr size_t kGuards = 7;
  for (size_t misalign : {0u, 1u, 3u}) {
    SCOPED_TRACE("source misaligned by " + std::to_string(misalign) + " bytes");
    const std::vector<float> got = run_dequantize(*t, raw, n_blocks, misalign, kGuards);
    const int64_t bad = first_bit_mismatch(got.data(), expected.data(), n);
    EXPECT_EQ(bad, -1) << c.file << ": first mismatch at element " << bad << " (block "
                       << bad / t->block_size << "): got " << describe(got[bad])
                       << ", gguf-py " << describe(expected[bad]);
    for (size_t g = n; g < n + kGuards; ++g) ASSERT_EQ(got[g], kGuard) << "overrun at " << g;
  }

  // Only the requested blocks are written: decoding one block leaves the rest alone.
  const std::vector<float> one = run_dequantize(*t, raw, 1, 0, kGuards);
  EXPECT_EQ(first_bit_mismatch(one.data(), expected.data(), t->block_size), -1);
  for (size_t g = t->block_size; g < one.size(); ++g) ASSERT_EQ(one[g], kGuard);
}

INSTANTIATE_TEST_SUITE_P(
    GgmlFixtures, GgmlOracle,
    ::testing::Values(OracleCase{GgmlType::F32, "f32"}, OracleCase{GgmlType::F16, "f16"},
                      OracleCase{GgmlType::BF16, "bf16"}, OracleCase{GgmlType::Q4_0, "q4_0"},
                      OracleCase{GgmlType::Q4_1, "q4_1"}, OracleCase{GgmlType::Q5_0, "q5_0"},
                      OracleCase{GgmlType::Q5_1, "q5_1"}, OracleCase{GgmlType::Q8_0, "q8_0"},
                      OracleCase{GgmlType::Q2_K, "q2_K"}, OracleCase{GgmlType::Q3_K, "q3_K"},
                      OracleCase{GgmlType::Q4_K, "q4_K"}, OracleCase{GgmlType::Q5_K, "q5_K"},
                      OracleCase{GgmlType::Q6_K, "q6_K"}, OracleCase{GgmlType::IQ4_NL, "iq4_nl"}),
    [](const ::testing::TestParamInfo<OracleCase>& info) { return std::string(info.param.file); });

// --- Hand-built golden blocks ------------------------------------------------------

void put_half(std::vector<uint8_t>& block, size_t offset, float value) {
  const uint16_t h = float_to_fp16(value);
  block[offset] = static_cast<uint8_t>(h & 0xFF);
  block[offset + 1] = static_cast<uint8_t>(h >> 8);
}

std::vector<float> decode_one(GgmlType type, const std::vector<uint8_t>& block) {
  const GgmlTypeTraits* t = find_ggml_type(id(type));
  EXPECT_NE(t, nullptr);
  EXPECT_EQ(block.size(), t->bytes_per_block);
  return run_dequantize(*t, block, 1, 0);
}

TEST(GgmlGolden, Q4_0AllZeroNibblesGiveMinusEightD) {
  std::vector<uint8_t> b(18, 0);
  put_half(b, 0, 0.5f);
  for (float v : decode_one(GgmlType::Q4_0, b)) EXPECT_EQ(v, -4.0f);
}

TEST(GgmlGolden, Q4_0LowNibblesFirstHalfHighNibblesSecondHalf) {
  std::vector<uint8_t> b(18, 0x88);  // every code 8 -> 0
  put_half(b, 0, 2.0f);
  b[2] = 0xF9;  // element 0: 9 -> +2; element 16: 15 -> +14
  const std::vector<float> y = decode_one(GgmlType::Q4_0, b);
  EXPECT_EQ(y[0], 2.0f);
  EXPECT_EQ(y[16], 14.0f);
  EXPECT_EQ(y[1], 0.0f);
  EXPECT_EQ(y[17], 0.0f);
}

TEST(GgmlGolden, Q4_1ScaleAndMin) {
  std::vector<uint8_t> b(20, 0xF0);  // low nibble 0, high nibble 15
  put_half(b, 0, 0.25f);
  put_half(b, 2, -2.0f);
  const std::vector<float> y = decode_one(GgmlType::Q4_1, b);
  EXPECT_EQ(y[0], -2.0f);    // 0 * 0.25 - 2
  EXPECT_EQ(y[31], 1.75f);   // 15 * 0.25 - 2
}

TEST(GgmlGolden, Q5_0HighBitOfElementJIsBitJOfQh) {
  std::vector<uint8_t> b(22, 0);
  put_half(b, 0, 1.0f);
  b[2 + 3] = 0x80;  // qh bit 31 -> element 31 gets +16
  b[2] = 0x01;      // qh bit 0 -> element 0
  const std::vector<float> y = decode_one(GgmlType::Q5_0, b);
  EXPECT_EQ(y[0], 0.0f);     // 16 - 16
  EXPECT_EQ(y[1], -16.0f);   // 0 - 16
  EXPECT_EQ(y[31], 0.0f);
  EXPECT_EQ(y[30], -16.0f);
}

TEST(GgmlGolden, Q5_1MaxCodeWithMin) {
  std::vector<uint8_t> b(24, 0xFF);  // all codes 31
  put_half(b, 0, 0.5f);
  put_half(b, 2, -8.0f);
  for (float v : decode_one(GgmlType::Q5_1, b)) EXPECT_EQ(v, 7.5f);  // 31*0.5 - 8
}

TEST(GgmlGolden, Q8_0MostNegativeCode) {
  std::vector<uint8_t> b(34, 0);
  put_half(b, 0, 0.25f);
  b[2] = 0x80;  // -128
  b[33] = 0x7F;  // 127
  const std::vector<float> y = decode_one(GgmlType::Q8_0, b);
  EXPECT_EQ(y[0], -32.0f);
  EXPECT_EQ(y[31], 31.75f);
  EXPECT_EQ(y[1], 0.0f);
}

TEST(GgmlGolden, Iq4NlGridEndsAndNibbleOrder) {
  std::vector<uint8_t> b(18, 0x88);  // every code 8 -> grid value 1
  put_half(b, 0, -0.5f);
  b[2] = 0xF0;   // element 0: code 0 -> -127; element 16: code 15 -> 113
  b[17] = 0x07;  // element 15: code 7 -> -10; element 31: code 0 -> -127
  const std::vector<float> y = decode_one(GgmlType::IQ4_NL, b);
  EXPECT_EQ(y[0], 63.5f);
  EXPECT_EQ(y[16], -56.5f);
  EXPECT_EQ(y[15], 5.0f);
  EXPECT_EQ(y[31], 63.5f);
  EXPECT_EQ(y[1], -0.5f);
}

TEST(GgmlGolden, ZeroScaleOfNegativeSignGivesNegativeZero) {
  // gguf-py's quantizer writes d = -0 for an all-zero block (max / -8).
  std::vector<uint8_t> b(18, 0x88);
  b[1] = 0x80;  // fp16 -0
  for (float v : decode_one(GgmlType::Q4_0, b)) EXPECT_EQ(float_to_bits(v), 0x80000000u);
}

TEST(GgmlGolden, F16SmallestSubnormalInfinityAndNegativeZero) {
  const std::vector<uint8_t> raw = {0x01, 0x00, 0x00, 0x7C, 0x00, 0x80, 0xFF, 0x7B};
  const GgmlTypeTraits* t = find_ggml_type(id(GgmlType::F16));
  const std::vector<float> y = run_dequantize(*t, raw, 4, 0);
  EXPECT_EQ(y[0], std::ldexp(1.0f, -24));
  EXPECT_EQ(y[1], INFINITY);
  EXPECT_EQ(float_to_bits(y[2]), 0x80000000u);
  EXPECT_EQ(y[3], 65504.0f);
}

TEST(GgmlGolden, BF16NaNPayloadAndSignKept) {
  const std::vector<uint8_t> raw = {0xC1, 0x7F, 0x80, 0xFF, 0x80, 0x3F};
  const GgmlTypeTraits* t = find_ggml_type(id(GgmlType::BF16));
  const std::vector<float> y = run_dequantize(*t, raw, 3, 0);
  EXPECT_EQ(float_to_bits(y[0]), 0x7FC10000u);
  EXPECT_EQ(y[1], -INFINITY);
  EXPECT_EQ(y[2], 1.0f);
}

TEST(GgmlGolden, Q4_KSixBitScaleAndMinOfUpperSubBlocks) {
  std::vector<uint8_t> b(144, 0);
  put_half(b, 0, 1.0f);   // d
  put_half(b, 2, 0.5f);   // dmin
  uint8_t* s = b.data() + 4;
  s[0] = 0xC1;   // sub-block 0: scale 1; top bits 11 -> scale of sub-block 4
  s[4] = 0x82;   // sub-block 0: min 2; top bits 10 -> min of sub-block 4
  s[8] = 0x5F;   // sub-block 4: scale low 0xF, min low 0x5
  uint8_t* qs = b.data() + 16;
  qs[0] = 0x03;        // element 0: q = 3 (sub-block 0)
  qs[64 + 0] = 0x07;   // element 128: q = 7 (sub-block 4, low nibbles of qs[64..95])
  const std::vector<float> y = decode_one(GgmlType::Q4_K, b);
  EXPECT_EQ(y[0], 1.0f * 3 - 0.5f * 2);                              // 2
  EXPECT_EQ(y[128], 1.0f * (15 | 3 << 4) * 7 - 0.5f * (5 | 2 << 4));  // 63*7 - 18.5
  EXPECT_EQ(y[32], 0.0f);  // sub-block 1: scale 0, min 0
}

TEST(GgmlGolden, Q5_KHighBitPlaneSelectsSubBlock) {
  std::vector<uint8_t> b(176, 0);
  put_half(b, 0, 1.0f);
  uint8_t* s = b.data() + 4;
  s[0] = 1;  // sub-block 0 scale 1
  s[2] = 1;  // sub-block 2 scale 1
  uint8_t* qh = b.data() + 16;
  qh[5] = 0x05;  // bits 0 and 2: elements 5 and 69 get +16
  const std::vector<float> y = decode_one(GgmlType::Q5_K, b);
  EXPECT_EQ(y[5], 16.0f);
  EXPECT_EQ(y[69], 16.0f);
  EXPECT_EQ(y[37], 0.0f);  // bit 1 clear (and sub-block 1 scale 0 anyway)
  EXPECT_EQ(y[4], 0.0f);
}

TEST(GgmlGolden, Q6_KZeroCodesGiveMinusThirtyTwoTimesScale) {
  std::vector<uint8_t> b(210, 0);
  for (int k = 0; k < 16; ++k) b[192 + k] = static_cast<uint8_t>(k % 2 ? -2 : 1);
  put_half(b, 208, 0.5f);
  b[0] = 0x0F;        // element 0: low nibble 15
  b[128] = 0x0C;      // qh[0] bits 2-3 = 3: element 32 high bits
  const std::vector<float> y = decode_one(GgmlType::Q6_K, b);
  EXPECT_EQ(y[0], 0.5f * 1 * (15 - 32));
  EXPECT_EQ(y[1], 0.5f * 1 * -32);
  EXPECT_EQ(y[16], 0.5f * -2 * -32);     // sub-block 1, int8 scale -2
  EXPECT_EQ(y[32], 0.5f * 1 * (48 - 32));  // sub-block 2
  EXPECT_EQ(y[64], 0.5f * 1 * -32);      // high nibble of ql[0] is 0
}

TEST(GgmlGolden, Q3_KClearHighMaskSubtractsFour) {
  std::vector<uint8_t> b(110, 0);
  put_half(b, 108, 1.0f);
  uint8_t* scales = b.data() + 96;
  scales[0] = 0x01;  // scale 0 low bits 1
  scales[8] = 0x02;  // scale 0 high bits 2 -> 33 - 32 = 1
  b[0] = 0x01;       // hmask[0] bit 0: element 0 has no -4
  b[32] = 0x03;      // qs[0]: element 0 code 3
  const std::vector<float> y = decode_one(GgmlType::Q3_K, b);
  EXPECT_EQ(y[0], 3.0f);
  EXPECT_EQ(y[1], -4.0f);
  EXPECT_EQ(y[16], 128.0f);  // scale 1 = 0 - 32; code 0 with clear mask bit -> -4
}

}  // namespace
}  // namespace lowbit
