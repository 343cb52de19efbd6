// llama.cpp's activation types (formats/ggml_activations.h) and their act-spec
// form (quant/act_quant.h): the vec_dot pairing of every weight type, golden
// blocks worked out by hand (ties to even, the FP16 rounding of Q8_0's d, Q8_1's
// block sum, Q8_K's signed maximum and FP32 d), awkward inputs, and the act
// quantizer path equal to the format function.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "core/half.h"
#include "formats/ggml_activations.h"
#include "io/ggml_types.h"
#include "quant/act_quant.h"

namespace lowbit {
namespace {

uint32_t bits(float f) { return std::bit_cast<uint32_t>(f); }

// a == b bit for bit; the message names the first differing index.
void expect_bits(const std::vector<float>& a, const std::vector<float>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(bits(a[i]), bits(b[i])) << "index " << i << ": " << a[i] << " vs " << b[i];
  }
}

const GgmlActType& act(GgmlType t) {
  const GgmlActType* a = find_ggml_act_type(t);
  EXPECT_NE(a, nullptr);
  return *a;
}

std::vector<float> round_row(GgmlType t, const std::vector<float>& x) {
  std::vector<float> out(x.size());
  const Status s = ggml_round_activations(act(t), x.data(), static_cast<int64_t>(x.size()), out.data());
  EXPECT_TRUE(s.ok()) << s.message();
  return out;
}

// --- The pairing table (ggml-cpu.c type_traits_cpu, written out independently) ---

TEST(GgmlActivations, EveryWeightTypeHasLlamaCppsVecDotType) {
  const std::pair<GgmlType, GgmlType> kPairs[] = {
      {GgmlType::F32, GgmlType::F32},     {GgmlType::F16, GgmlType::F16},   {GgmlType::BF16, GgmlType::BF16},
      {GgmlType::Q4_0, GgmlType::Q8_0},   {GgmlType::Q5_0, GgmlType::Q8_0}, {GgmlType::Q8_0, GgmlType::Q8_0},
      {GgmlType::IQ4_NL, GgmlType::Q8_0}, {GgmlType::Q4_1, GgmlType::Q8_1}, {GgmlType::Q5_1, GgmlType::Q8_1},
      {GgmlType::Q2_K, GgmlType::Q8_K},   {GgmlType::Q3_K, GgmlType::Q8_K}, {GgmlType::Q4_K, GgmlType::Q8_K},
      {GgmlType::Q5_K, GgmlType::Q8_K},   {GgmlType::Q6_K, GgmlType::Q8_K},
  };
  for (const auto& [weight, activation] : kPairs) {
    const GgmlTypeTraits* t = find_ggml_type(static_cast<uint32_t>(weight));
    ASSERT_NE(t, nullptr);
    SCOPED_TRACE(t->name);
    EXPECT_EQ(t->act_type, activation);
    EXPECT_NE(find_ggml_act_type(activation), nullptr);
    // Only Q4_1 and Q5_1 carry a block minimum, at byte 2 (after the FP16 d).
    const bool has_min = weight == GgmlType::Q4_1 || weight == GgmlType::Q5_1;
    EXPECT_EQ(t->min_offset, has_min ? 2 : -1);
  }
}

TEST(GgmlActivations, TableGeometryAndBits) {
  EXPECT_EQ(act(GgmlType::Q8_0).block_size, 32);
  EXPECT_EQ(act(GgmlType::Q8_1).block_size, 32);
  EXPECT_EQ(act(GgmlType::Q8_K).block_size, 256);
  EXPECT_EQ(act(GgmlType::F16).block_size, 1);
  // block_q8_0 34 bytes / 32, block_q8_1 36 / 32, block_q8_K 4 + 256 + 32 bytes / 256.
  EXPECT_DOUBLE_EQ(act(GgmlType::Q8_0).bits_per_element, 8.5);
  EXPECT_DOUBLE_EQ(act(GgmlType::Q8_1).bits_per_element, 9.0);
  EXPECT_DOUBLE_EQ(act(GgmlType::Q8_K).bits_per_element, 9.125);
  EXPECT_STREQ(act(GgmlType::Q8_K).name, "ggml_q8_K");
  EXPECT_EQ(find_ggml_act_type("ggml_q8_1"), &act(GgmlType::Q8_1));
  EXPECT_EQ(find_ggml_act_type("q8_1"), nullptr);
  EXPECT_EQ(find_ggml_act_type(GgmlType::Q4_0), nullptr);  // a weight type, not an activation type
}

// --- Q8_0 golden blocks ---------------------------------------------------------

TEST(GgmlActivations, Q8_0UnitScaleTiesRoundToEven) {
  // amax = 127: d = 1 (FP16 0x3C00) and 127 / amax = 1 exactly, so the codes are
  // the inputs rounded to nearest even (roundf would give 3, -3, 1, 2 for the ties).
  std::vector<float> x(32, 0.0f);
  const float in[] = {127.0f, 2.5f, 3.5f, -2.5f, -0.5f, 0.5f, 1.5f, 0.49999997f, -126.6f, 10.25f};
  const int8_t expect_q[] = {127, 2, 4, -2, 0, 0, 2, 0, -127, 10};
  std::copy(std::begin(in), std::end(in), x.begin());
  uint16_t d = 0;
  int8_t q[32];
  ggml_q8_0_encode(x.data(), &d, q);
  EXPECT_EQ(d, 0x3C00);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(q[i], i < 10 ? expect_q[i] : 0) << i;
  std::vector<float> expect(32, 0.0f);
  for (int i = 0; i < 10; ++i) expect[i] = expect_q[i];
  expect_bits(round_row(GgmlType::Q8_0, x), expect);
}

TEST(GgmlActivations, Q8_0CodesFromTheFp32ScaleValuesFromTheFp16One) {
  // amax = 1: d = 1/127 = 0.007874016 rounds to FP16 0x2008 = 2^-7 · (1 + 8/1024)
  // = 0.00787353515625; codes from x · 127: 0.5 · 127 = 63.5 -> 64 (even),
  // 0.25 · 127 = 31.75 -> 32, 0.75 · 127 = 95.25 -> 95, 0.125 · 127 -> 16,
  // -0.3 · 127 = -38.1 -> -38, (1/127) · 127 -> 1, 0.9 · 127 = 114.3 -> 114.
  std::vector<float> x(32, 0.0f);
  const float in[] = {-1.0f, 0.5f, 0.25f, 0.75f, 0.125f, -0.3f, 1.0f / 127.0f, 0.9f};
  const int expect_q[] = {-127, 64, 32, 95, 16, -38, 1, 114};
  std::copy(std::begin(in), std::end(in), x.begin());
  uint16_t d = 0;
  int8_t q[32];
  ggml_q8_0_encode(x.data(), &d, q);
  EXPECT_EQ(d, 0x2008);
  std::vector<float> expect(32, 0.0f);
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(q[i], expect_q[i]) << i;
    expect[i] = static_cast<float>(expect_q[i]) * 0.00787353515625f;  // exact: 7 x 11 significant bits
  }
  const std::vector<float> got = round_row(GgmlType::Q8_0, x);
  expect_bits(got, expect);
  EXPECT_NE(got[0], -1.0f);  // the FP16 d is not 1/127: x̂ = -0.99993896
  // Q8_1 holds the same values.
  expect_bits(round_row(GgmlType::Q8_1, x), expect);
}

TEST(GgmlActivations, Q8_0ZeroBlockAndSignedZeros) {
  std::vector<float> x(64, 0.0f);
  x[40] = -0.0f;
  x[33] = 3.0f;  // second block only
  uint16_t d = 1;
  int8_t q[32];
  ggml_q8_0_encode(x.data(), &d, q);
  EXPECT_EQ(d, 0);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(q[i], 0);
  const std::vector<float> got = round_row(GgmlType::Q8_0, x);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(got[i], 0.0f);
  // Second block: amax 3, d = 3/127 -> FP16; the 3 comes back as fp16(d) · 127.
  EXPECT_EQ(bits(got[33]), bits(fp16_to_float(float_to_fp16(3.0f / 127.0f)) * 127.0f));
}

// --- Q8_1 block sums --------------------------------------------------------------

TEST(GgmlActivations, Q8_1SumRoundsDTimesSumNotD) {
  // The block of Q8_0CodesFromTheFp32Scale...: Σq = 157, s = fp16(0.007874016 · 157
  // = 1.2362205) = 1266 · 2^-10 = 1.236328125; fp16(d) · Σq = 1.23614501953125, so
  // e = 0.00018310546875.
  std::vector<float> x(32, 0.0f);
  const float in[] = {-1.0f, 0.5f, 0.25f, 0.75f, 0.125f, -0.3f, 1.0f / 127.0f, 0.9f};
  std::copy(std::begin(in), std::end(in), x.begin());
  uint16_t d = 0, s = 0;
  int8_t q[32];
  ggml_q8_1_encode(x.data(), &d, &s, q);
  EXPECT_EQ(d, 0x2008);
  EXPECT_EQ(fp16_to_float(s), 1.236328125f);
  // A unit-scale block with Σq = 16 · 127 + 17 = 2049: FP16 holds even integers
  // there, 2049 is a tie and rounds to 2048, so e = 2048 - 2049 = -1.
  std::vector<float> y(64, 0.0f);
  std::copy(x.begin(), x.end(), y.begin() + 32);
  for (int i = 0; i < 16; ++i) y[i] = 127.0f;
  y[16] = 17.0f;
  std::vector<float> e(2);
  ASSERT_TRUE(ggml_q8_1_sum_residuals(y.data(), 64, e.data()).ok());
  EXPECT_EQ(e[0], -1.0f);
  EXPECT_EQ(e[1], 0.00018310546875f);
}

// --- Q8_K golden blocks -----------------------------------------------------------

TEST(GgmlActivations, Q8_KTakesTheSignedMaximumAndAnFp32D) {
  // The largest magnitude is -4 at index 7 (a +4 later does not replace it: the
  // first on ties), so iscale = -127 / -4 = 31.75 and d = 1 / 31.75 in FP32
  // (0x3D010204, not rounded to FP16). Codes RNE(31.75 · x): 1 -> 31.75 -> 32,
  // 2 -> 63.5 -> 64 (even), 0.5 -> 15.875 -> 16, -4 -> -127, 4 -> 127,
  // -0.015748031 -> -0.5 -> 0 (even), 0.3 -> 9.525 -> 10.
  std::vector<float> x(256, 0.0f);
  const std::pair<int, float> in[] = {{0, 1.0f}, {1, 2.0f}, {2, 0.5f}, {7, -4.0f},
                                      {100, 4.0f}, {200, -0.015748031f}, {255, 0.3f}};
  const int expect_q[] = {32, 64, 16, -127, 127, 0, 10};
  for (const auto& [i, v] : in) x[i] = v;
  float d = 0.0f;
  int8_t q[256];
  ggml_q8_K_encode(x.data(), &d, q);
  EXPECT_EQ(bits(d), 0x3D010204u);
  EXPECT_EQ(d, 1.0f / 31.75f);
  std::vector<float> expect(256, 0.0f);
  for (size_t k = 0; k < std::size(in); ++k) {
    EXPECT_EQ(q[in[k].first], expect_q[k]) << in[k].first;
    expect[in[k].first] = d * static_cast<float>(expect_q[k]);
  }
  const std::vector<float> got = round_row(GgmlType::Q8_K, x);
  expect_bits(got, expect);
  EXPECT_EQ(got[7], -4.0f);
  EXPECT_EQ(got[0], 1.007874f);  // 32 / 31.75 in FP32

  // The same block with +4 first: iscale = -31.75, every code negated, d negative,
  // and the values unchanged (round to nearest even is odd-symmetric) but for the
  // sign of zero: d · 0 = -0.
  x[7] = 4.0f;
  x[100] = -4.0f;
  ggml_q8_K_encode(x.data(), &d, q);
  EXPECT_EQ(d, -1.0f / 31.75f);
  EXPECT_EQ(q[7], -127);
  EXPECT_EQ(q[100], 127);
  EXPECT_EQ(q[0], -32);
  std::swap(expect[7], expect[100]);
  const std::vector<float> flipped = round_row(GgmlType::Q8_K, x);
  for (int i = 0; i < 256; ++i) {
    EXPECT_EQ(flipped[i], expect[i]) << i;
    EXPECT_EQ(bits(flipped[i]), bits(d * static_cast<float>(q[i]))) << i;
  }
  EXPECT_TRUE(std::signbit(flipped[3]));
}

TEST(GgmlActivations, Q8_KZeroBlock) {
  std::vector<float> x(512, 0.0f);
  x[300] = 1.0f;
  float d = 1.0f;
  int8_t q[256];
  ggml_q8_K_encode(x.data(), &d, q);
  EXPECT_EQ(d, 0.0f);
  const std::vector<float> got = round_row(GgmlType::Q8_K, x);
  for (int i = 0; i < 256; ++i) EXPECT_EQ(got[i], 0.0f);
  EXPECT_EQ(got[300], 1.0f);  // a lone maximum comes back exactly: d · -127 = 1
}

// --- F16 / BF16 -------------------------------------------------------------------

TEST(GgmlActivations, HalfTypesRoundToNearestEven) {
  // F16: 1 + 2^-11 is halfway between 1 and 1 + 2^-10 -> 1; 1 + 3 · 2^-11 -> 1 + 2^-9;
  // 65519 -> 65504; 65520 (halfway to 65536) -> inf; 2^-25 (half the smallest
  // subnormal) -> 0; 3 · 2^-25 -> 2^-23.
  const std::vector<float> x = {1.0f + 0x1p-11f, 1.0f + 0x3p-11f, 65519.0f, 65520.0f, 0x1p-25f, 0x3p-25f};
  const float inf = std::numeric_limits<float>::infinity();
  expect_bits(round_row(GgmlType::F16, x), {1.0f, 1.0f + 0x1p-9f, 65504.0f, inf, 0.0f, 0x1p-23f});
  // BF16 (8 significant bits): 1 + 2^-8 -> 1; 1 + 3 · 2^-8 -> 1 + 2^-6.
  expect_bits(round_row(GgmlType::BF16, {1.0f + 0x1p-8f, 1.0f + 0x3p-8f, -3.0f}), {1.0f, 1.0f + 0x1p-6f, -3.0f});
  expect_bits(round_row(GgmlType::F32, {0.1f, -7.25f}), {0.1f, -7.25f});
}

// --- Awkward input -----------------------------------------------------------------

TEST(GgmlActivations, RowLengthAndNonFiniteInputAreErrors) {
  std::vector<float> x(33, 1.0f), out(33);
  Status s = ggml_round_activations(act(GgmlType::Q8_0), x.data(), 33, out.data());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("multiple of the block size 32"), std::string::npos) << s.message();
  EXPECT_FALSE(ggml_round_activations(act(GgmlType::Q8_K), x.data(), 32, out.data()).ok());
  std::vector<float> e(2);
  EXPECT_FALSE(ggml_q8_1_sum_residuals(x.data(), 33, e.data()).ok());
  x[5] = std::nanf("");
  s = ggml_round_activations(act(GgmlType::F16), x.data(), 33, out.data());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("non-finite value at index 5"), std::string::npos) << s.message();
  EXPECT_FALSE(ggml_q8_1_sum_residuals(x.data(), 32, e.data()).ok());
}

TEST(GgmlActivations, RoundingIsIdempotentAndInPlace) {
  // F16/BF16 rounding is a projection: rounding again changes nothing. Every
  // type may round in place.
  std::mt19937 rng(7);
  std::student_t_distribution<float> t(3.0f);
  std::vector<float> x(1024);
  for (float& v : x) v = t(rng);
  for (GgmlType type : {GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q8_K}) {
    const std::vector<float> once = round_row(type, x);
    if (type == GgmlType::F16 || type == GgmlType::BF16) expect_bits(round_row(type, once), once);
    std::vector<float> in_place = x;
    ASSERT_TRUE(ggml_round_activations(act(type), in_place.data(), 1024, in_place.data()).ok());
    expect_bits(in_place, once);
  }
  // Every Q8_0 value is fp16(d) times an integer code of at most 127 in magnitude.
  const std::vector<float> q8 = round_row(GgmlType::Q8_0, x);
  for (int b = 0; b < 32; ++b) {
    uint16_t d = 0;
    int8_t q[32];
    ggml_q8_0_encode(x.data() + 32 * b, &d, q);
    for (int i = 0; i < 32; ++i) ASSERT_EQ(q8[32 * b + i], fp16_to_float(d) * static_cast<float>(q[i]));
  }
}

// --- The act-spec form ---------------------------------------------------------------

TEST(GgmlActivations, ActSpecsFixTheirBlocks) {
  auto k = parse_act_spec({{"format", "ggml_q8_K"}}, "test");
  ASSERT_TRUE(k.ok()) << k.status().message();
  EXPECT_EQ(k->granularity, ActGranularity::kGroup);
  EXPECT_EQ(k->group, 256);
  EXPECT_DOUBLE_EQ(act_bits_per_element(*k, 576), 9.125);
  auto h = parse_act_spec({{"format", "ggml_f16"}}, "test");
  ASSERT_TRUE(h.ok()) << h.status().message();
  EXPECT_EQ(h->granularity, ActGranularity::kToken);
  EXPECT_TRUE(parse_act_spec({{"format", "ggml_q8_0"}, {"granularity", "group"}, {"group", 32}}, "t").ok());
  auto bad_group = parse_act_spec({{"format", "ggml_q8_0"}, {"group", 16}}, "where");
  ASSERT_FALSE(bad_group.ok());
  EXPECT_NE(bad_group.status().message().find("fixes granularity \"group\" with group 32"), std::string::npos)
      << bad_group.status().message();
  auto clip = parse_act_spec({{"format", "ggml_q8_1"}, {"clip", 0.9}}, "where");
  ASSERT_FALSE(clip.ok());
  EXPECT_NE(clip.status().message().find("takes no clip"), std::string::npos) << clip.status().message();
  // The canonical JSON reads back to the same spec.
  auto again = parse_act_spec(act_spec_json(*k), "test");
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(again->format, "ggml_q8_K");
  EXPECT_EQ(again->group, 256);
}

TEST(GgmlActivations, LlamaCppActSpecPerWeightType) {
  EXPECT_FALSE(llamacpp_act_spec(GgmlType::F32).has_value());
  EXPECT_EQ(llamacpp_act_spec(GgmlType::F16)->format, "ggml_f16");
  EXPECT_EQ(llamacpp_act_spec(GgmlType::BF16)->format, "ggml_bf16");
  EXPECT_EQ(llamacpp_act_spec(GgmlType::Q4_0)->format, "ggml_q8_0");
  EXPECT_EQ(llamacpp_act_spec(GgmlType::IQ4_NL)->group, 32);
  EXPECT_EQ(llamacpp_act_spec(GgmlType::Q5_1)->format, "ggml_q8_1");
  const std::optional<ActQuantSpec> k = llamacpp_act_spec(GgmlType::Q6_K);
  ASSERT_TRUE(k.has_value());
  EXPECT_EQ(k->format, "ggml_q8_K");
  EXPECT_EQ(k->granularity, ActGranularity::kGroup);
  EXPECT_EQ(k->group, 256);
}

TEST(GgmlActivations, ActQuantizerEqualsTheFormatFunctionRowByRow) {
  // [5 tokens, 512]: each token row is rounded on its own (a row's result does not
  // depend on the others), threaded or not.
  std::mt19937 rng(3);
  std::normal_distribution<float> n(0.0f, 2.0f);
  std::vector<float> x(5 * 512);
  for (float& v : x) v = n(rng);
  x[3 * 512 + 17] = 90.0f;  // an outlier in one row only
  ThreadPool pool(2);
  for (GgmlType type : {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q4_K, GgmlType::F16}) {
    const std::optional<ActQuantSpec> spec = llamacpp_act_spec(type);
    ASSERT_TRUE(spec.has_value());
    auto q = ActQuantizer::create(*spec);
    ASSERT_TRUE(q.ok()) << q.status().message();
    std::vector<float> got(x.size());
    ASSERT_TRUE(q->apply(x.data(), 5, 512, got.data(), 0.0f, &pool).ok());
    std::vector<float> expect(x.size());
    const GgmlActType& a = *find_ggml_act_type(find_ggml_type(static_cast<uint32_t>(type))->act_type);
    for (int t = 0; t < 5; ++t) {
      ASSERT_TRUE(ggml_round_activations(a, x.data() + 512 * t, 512, expect.data() + 512 * t).ok());
    }
    expect_bits(got, expect);
  }
}

}  // namespace
}  // namespace lowbit
