// Scaled formats end to end: the traits table, bits per element, requantizing a
// dequantized tensor returns the same codes, zero and outlier blocks, awkward
// lengths and unaligned pointers, and every ISA's fast path equal to the scalar
// reference byte for byte.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <set>
#include <string>

#include "core/half.h"
#include "formats/block_format.h"
#include "formats/format_eval.h"

namespace lowbit {
namespace {

std::vector<Isa> supported_isas() {
  std::vector<Isa> isas;
  const CpuFeatures f = detect_cpu_features();
  for (Isa isa : {Isa::kGeneric, Isa::kAvx2, Isa::kAvx512}) {
    if (isa_supported(isa, f)) isas.push_back(isa);
  }
  return isas;
}

// Byte-exact comparison of two packed tensors, naming the first difference.
::testing::AssertionResult same_bytes(const QuantizedTensor& a, const QuantizedTensor& b) {
  auto first_diff = [](const std::vector<uint8_t>& x, const std::vector<uint8_t>& y) -> int64_t {
    if (x.size() != y.size()) return -2;
    for (size_t i = 0; i < x.size(); ++i) {
      if (x[i] != y[i]) return static_cast<int64_t>(i);
    }
    return -1;
  };
  for (auto [what, x, y] : {std::tuple{"codes", &a.codes, &b.codes}, std::tuple{"scales", &a.scales, &b.scales},
                            std::tuple{"mins", &a.mins, &b.mins}}) {
    const int64_t d = first_diff(*x, *y);
    if (d == -2) return ::testing::AssertionFailure() << what << " sizes " << x->size() << " vs " << y->size();
    if (d >= 0) {
      return ::testing::AssertionFailure() << what << " byte " << d << ": " << int((*x)[d]) << " vs " << int((*y)[d]);
    }
  }
  if (float_to_bits(a.tensor_scale) != float_to_bits(b.tensor_scale)) {
    return ::testing::AssertionFailure() << "tensor scale " << a.tensor_scale << " vs " << b.tensor_scale;
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult same_floats(const std::vector<float>& a, const std::vector<float>& b) {
  for (size_t i = 0; i < a.size(); ++i) {
    if (float_to_bits(a[i]) != float_to_bits(b[i])) {
      return ::testing::AssertionFailure() << "element " << i << ": " << a[i] << " vs " << b[i];
    }
  }
  return ::testing::AssertionSuccess();
}

const BlockFormat& named(const std::string& name) {
  auto f = find_block_format(name);
  EXPECT_TRUE(f.ok()) << f.status().message();
  return **f;
}

TEST(BlockFormats, TableHoldsTheNamedFormats) {
  for (const char* name : {"int8_pc", "int4_g128", "int4_g128_asym", "int3_g128", "int2_g64", "fp8_e4m3", "fp8_e5m2",
                           "fp8_e4m3_b128", "mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp4",
                           "mxfp4_up", "mxint8", "nvfp4", "nf4_g64", "bfp8_b16", "bfp16_b64", "fp4_g128_pow2", "fp16",
                           "bf16"}) {
    EXPECT_TRUE(find_block_format(name).ok()) << name;
  }
  std::set<std::string> names;
  for (const BlockFormat& f : block_formats()) {
    EXPECT_TRUE(names.insert(f.name()).second) << "duplicate " << f.name();
    EXPECT_FALSE(f.spec.description.empty()) << f.name();
  }
  auto missing = find_block_format("int5_g7");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("nvfp4"), std::string::npos);
}

TEST(BlockFormats, BitsPerElementCountEveryByte) {
  struct Case {
    const char* name;
    double bits;  // on 4096 x 4096
  };
  const Case cases[] = {
      {"int8_pc", 8 + 32.0 / 4096},  {"int4_g128", 4.125},    {"int4_g128_asym", 4.25}, {"int3_g128", 3.25},
      {"int2_g64", 2.5},             {"fp8_e4m3", 8 + 32.0 / 4096}, {"fp8_e4m3_b128", 8 + 32.0 / (128 * 128)},
      {"mxfp8_e4m3", 8.25},          {"mxfp6_e2m3", 6.25},    {"mxfp4", 4.25},          {"mxint8", 8.25},
      {"nvfp4", 4.5 + 32.0 / (4096.0 * 4096)}, {"nf4_g64", 4.25}, {"bfp8_b16", 8.5}, {"bfp16_b64", 16.125},
      {"fp16", 16.0},                {"bf16", 16.0},
  };
  for (const Case& c : cases) {
    auto f = find_block_format(c.name);
    ASSERT_TRUE(f.ok()) << c.name;
    EXPECT_DOUBLE_EQ((*f)->bits_per_element(4096, 4096), c.bits) << c.name;
  }
  // Row padding: 33 three-bit codes take 13 bytes; 3 rows of int3_g128 [3, 33]: 39 code bytes + 3 * (2 + 2).
  EXPECT_EQ(packed_bytes(named("int3_g128").layout, 3, 33), 39 + 12);
}

TEST(BlockFormats, InvalidSpecsAreRejected) {
  BlockFormatSpec s;
  s.name = "bad";
  s.element = "int4";
  s.granularity = ScaleGranularity::kGroup;
  s.group_cols = 32;
  s.asymmetric = true;  // int4 is signed
  EXPECT_FALSE(make_block_format(s).ok());
  s.element = "uint4";
  s.scale_type = ScaleType::kE8m0;  // cannot hold a negative minimum
  EXPECT_FALSE(make_block_format(s).ok());
  s.scale_type = ScaleType::kFp16;
  EXPECT_TRUE(make_block_format(s).ok());
  s.asymmetric = false;
  s.element = "fp4_e2m1";
  s.rule = ScaleRule::kPow2;
  s.scale_type = ScaleType::kUe4m3;  // no powers of two over a useful range
  EXPECT_FALSE(make_block_format(s).ok());
  s.element = "no_such_element";
  auto r = make_block_format(s);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("no_such_element"), std::string::npos);
}

// Inputs that exercise a format: Gaussian, with an all-zero block, a huge
// outlier, exact zeros of both signs and a tiny value.
std::vector<float> mixed_input(int64_t rows, int64_t cols, uint64_t seed) {
  std::vector<float> x = synthetic_matrix(SyntheticInput::kGaussian, rows, cols, seed);
  const int64_t n = rows * cols;
  for (int64_t i = 0; i < std::min<int64_t>(n, 40); ++i) x[i] = 0.0f;  // zero group(s) at the start
  if (n > 50) x[50] = 1.0e4f;
  if (n > 60) x[60] = -0.0f;
  if (n > 61) x[61] = 1.0e-30f;
  return x;
}

TEST(BlockFormats, DequantizeRequantizeReturnsTheSameCodes) {
  for (const BlockFormat& f : block_formats()) {
    EXPECT_TRUE(f.requantize_stable) << f.name();
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{4, 4097}, {130, 257}, {1, 33}}) {
      for (SyntheticInput input : {SyntheticInput::kGaussian, SyntheticInput::kOutlier}) {
        const std::vector<float> x = input == SyntheticInput::kGaussian ? mixed_input(rows, cols, 7)
                                                                         : synthetic_matrix(input, rows, cols, 8);
        auto q1 = quantize(f, x.data(), rows, cols);
        ASSERT_TRUE(q1.ok()) << f.name() << ": " << q1.status().message();
        std::vector<float> back(x.size());
        ASSERT_TRUE(dequantize(f, *q1, back.data()).ok());
        auto q2 = quantize(f, back.data(), rows, cols);
        ASSERT_TRUE(q2.ok());
        EXPECT_EQ(q1->codes, q2->codes) << f.name() << " [" << rows << ", " << cols << "]";
        // Scales too, up to the last bit of an FP32 scale recomputed from its own product.
        std::vector<float> again(x.size());
        ASSERT_TRUE(dequantize(f, *q2, again.data()).ok());
        for (size_t i = 0; i < x.size(); ++i) {
          ASSERT_NEAR(again[i], back[i], std::fabs(back[i]) * 3e-7f) << f.name() << " element " << i;
        }
      }
    }
  }
}

TEST(BlockFormats, ZeroBlocksAndOutliersStayFinite) {
  for (const BlockFormat& f : block_formats()) {
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 1}, {3, 200}, {129, 129}}) {
      std::vector<float> zeros(rows * cols, 0.0f);
      auto q = quantize_reference(f, zeros.data(), rows, cols);
      ASSERT_TRUE(q.ok()) << f.name();
      std::vector<float> back(zeros.size(), 1.0f);
      ASSERT_TRUE(dequantize_reference(f, *q, back.data()).ok());
      for (float v : back) ASSERT_EQ(v, 0.0f) << f.name();

      for (float outlier : {1.0e4f, 1.0e30f, -3.0e38f}) {
        std::vector<float> x = synthetic_matrix(SyntheticInput::kGaussian, rows, cols, 3);
        x[x.size() / 2] = outlier;
        auto qo = quantize_reference(f, x.data(), rows, cols);
        ASSERT_TRUE(qo.ok()) << f.name();
        ASSERT_TRUE(dequantize_reference(f, *qo, back.data()).ok());
        for (size_t i = 0; i < back.size(); ++i) ASSERT_TRUE(std::isfinite(back[i])) << f.name() << " " << outlier;
        const float got = back[x.size() / 2];
        EXPECT_EQ(std::signbit(got), std::signbit(outlier)) << f.name();
        // Formats whose scale type can hold outlier / vmax reproduce it within the element's
        // relative spacing at its top (at most 1/3 for FP4: 4 -> 6; clipping of MX pow2 <= 25%).
        const bool scale_holds = std::fabs(outlier) / f.element_max < scale_type_max(f.spec.scale_type) &&
                                 f.spec.granularity != ScaleGranularity::kNone;
        if (scale_holds && f.element.bits >= 4) {
          EXPECT_NEAR(got / outlier, 1.0, 0.34) << f.name() << " outlier " << outlier << " -> " << got;
        }
      }
    }
  }
}

TEST(BlockFormats, FastPathEqualsReferenceForEveryFormatIsaAndLength) {
  const std::vector<Isa> isas = supported_isas();
  for (const BlockFormat& f : block_formats()) {
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 1}, {1, 3}, {1, 31}, {1, 32}, {1, 33}, {1, 4097},
                              {3, 33}, {130, 257}}) {
      // One float of offset: neither the input nor the output is 64-byte aligned.
      std::vector<float> storage(rows * cols + 1);
      const std::vector<float> x = mixed_input(rows, cols, 11 + cols);
      std::copy(x.begin(), x.end(), storage.begin() + 1);
      const float* xp = storage.data() + 1;
      auto ref = quantize_reference(f, xp, rows, cols);
      ASSERT_TRUE(ref.ok()) << f.name() << ": " << ref.status().message();
      std::vector<float> ref_out(rows * cols + 1);
      ASSERT_TRUE(dequantize_reference(f, *ref, ref_out.data() + 1).ok());
      for (Isa isa : isas) {
        auto kernel = BlockKernel::create(f, isa);
        ASSERT_TRUE(kernel.ok()) << kernel.status().message();
        auto fast = kernel->quantize(xp, rows, cols);
        ASSERT_TRUE(fast.ok());
        EXPECT_TRUE(same_bytes(*ref, *fast)) << f.name() << " " << isa_name(isa) << " [" << rows << ", " << cols << "]";
        std::vector<float> out(rows * cols + 1);
        ASSERT_TRUE(kernel->dequantize(*ref, out.data() + 1).ok());
        EXPECT_TRUE(same_floats(ref_out, out)) << f.name() << " " << isa_name(isa) << " [" << rows << ", " << cols
                                               << "]";
      }
    }
  }
}

// Combinations the named table does not use: per-tensor scales, the other scale
// types, posit and 16-bit elements, 2-D tiles with power-of-two scales.
std::vector<BlockFormat> extra_formats() {
  using G = ScaleGranularity;
  using T = ScaleType;
  using R = ScaleRule;
// Designated initializers leave the other members at their defaults on purpose.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
  const BlockFormatSpec specs[] = {
      {.name = "int8_tensor", .element = "int8", .granularity = G::kTensor},
      {.name = "fp8_bf16_g64", .element = "fp8_e4m3", .granularity = G::kGroup, .group_cols = 64,
       .scale_type = T::kBf16},
      {.name = "int4_e4m3_g32", .element = "int4", .granularity = G::kGroup, .group_cols = 32, .scale_type = T::kE4m3},
      {.name = "fp4_ue5m3_g16_2l", .element = "fp4_e2m1", .granularity = G::kGroup, .group_cols = 16,
       .scale_type = T::kUe5m3, .tensor_scale = true},
      {.name = "posit8_2_g32", .element = "posit8_2", .granularity = G::kGroup, .group_cols = 32,
       .scale_type = T::kFp16},
      {.name = "posit16_1_row", .element = "posit16_1"},
      {.name = "uint8_bf16_g32", .element = "uint8", .granularity = G::kGroup, .group_cols = 32,
       .scale_type = T::kBf16, .asymmetric = true},
      {.name = "nf4_pow2_32x16", .element = "nf4", .granularity = G::kBlock2D, .group_rows = 32, .group_cols = 16,
       .scale_type = T::kE8m0, .rule = R::kPow2Up},
      {.name = "int16_row_fp16_pow2", .element = "int16", .scale_type = T::kFp16, .rule = R::kPow2},
      {.name = "fp6_fp32pow2_g24", .element = "fp6_e3m2", .granularity = G::kGroup, .group_cols = 24,
       .rule = R::kPow2},
  };
#pragma GCC diagnostic pop
  std::vector<BlockFormat> formats;
  for (const BlockFormatSpec& s : specs) {
    auto f = make_block_format(s);
    EXPECT_TRUE(f.ok()) << s.name << ": " << f.status().message();
    if (f.ok()) formats.push_back(std::move(f).value());
  }
  return formats;
}

TEST(BlockFormats, OtherCombinationsMatchTheReferenceAndRequantize) {
  const std::vector<BlockFormat> extra = extra_formats();
  // Known unstable: UINT8's 255 steps need more than BF16's 8 bits to be re-derived;
  // NF4's levels one binade down are not its top levels halved (pow2_up).
  for (const BlockFormat& f : extra) {
    const bool expected_stable = f.name() != "uint8_bf16_g32" && f.name() != "nf4_pow2_32x16";
    EXPECT_EQ(f.requantize_stable, expected_stable) << f.name();
  }
  for (const BlockFormat& f : extra) {
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 33}, {3, 4097}, {70, 130}}) {
      const std::vector<float> x = mixed_input(rows, cols, 17);
      auto ref = quantize_reference(f, x.data(), rows, cols);
      ASSERT_TRUE(ref.ok()) << f.name() << ": " << ref.status().message();
      std::vector<float> ref_out(x.size());
      ASSERT_TRUE(dequantize_reference(f, *ref, ref_out.data()).ok());
      for (float v : ref_out) ASSERT_TRUE(std::isfinite(v)) << f.name();
      for (Isa isa : supported_isas()) {
        auto fast = quantize(f, x.data(), rows, cols, {}, isa);
        ASSERT_TRUE(fast.ok());
        EXPECT_TRUE(same_bytes(*ref, *fast)) << f.name() << " " << isa_name(isa) << " [" << rows << ", " << cols << "]";
        std::vector<float> out(x.size());
        ASSERT_TRUE(dequantize(f, *ref, out.data(), isa).ok());
        EXPECT_TRUE(same_floats(ref_out, out)) << f.name() << " " << isa_name(isa);
      }
      if (!f.requantize_stable) continue;
      auto again = quantize_reference(f, ref_out.data(), rows, cols);
      ASSERT_TRUE(again.ok());
      EXPECT_EQ(again->codes, ref->codes) << f.name() << " [" << rows << ", " << cols << "]";
    }
  }
}

TEST(BlockFormats, FastPathEqualsReferenceWithClipSearchAndImportance) {
  const int64_t rows = 5, cols = 300;
  const std::vector<float> x = synthetic_matrix(SyntheticInput::kOutlier, rows, cols, 5);
  std::vector<float> importance(cols);
  for (int64_t c = 0; c < cols; ++c) importance[c] = 1.0f + static_cast<float>(c % 7);
  QuantizeOptions o;
  o.search = ScaleSearch::kMseClip;
  o.importance = importance;
  for (const BlockFormat& f : block_formats()) {
    auto ref = quantize_reference(f, x.data(), rows, cols, o);
    ASSERT_TRUE(ref.ok()) << f.name();
    for (Isa isa : supported_isas()) {
      auto fast = quantize(f, x.data(), rows, cols, o, isa);
      ASSERT_TRUE(fast.ok());
      EXPECT_TRUE(same_bytes(*ref, *fast)) << f.name() << " " << isa_name(isa);
    }
  }
}

TEST(BlockFormats, StochasticRoundingIsSeededAndIsaIndependent) {
  const BlockFormat& f = named("int4_g128");
  const std::vector<float> x = synthetic_matrix(SyntheticInput::kGaussian, 3, 300, 2);
  QuantizeOptions o;
  o.rounding = Rounding::kStochastic;
  o.seed = 42;
  auto a = quantize_reference(f, x.data(), 3, 300, o);
  ASSERT_TRUE(a.ok());
  for (Isa isa : supported_isas()) {
    auto b = quantize(f, x.data(), 3, 300, o, isa);
    ASSERT_TRUE(b.ok());
    EXPECT_TRUE(same_bytes(*a, *b)) << isa_name(isa);
  }
  o.seed = 43;
  auto c = quantize_reference(f, x.data(), 3, 300, o);
  EXPECT_NE(a->codes, c->codes);
  auto nearest = quantize_reference(f, x.data(), 3, 300);
  EXPECT_NE(a->codes, nearest->codes);
  EXPECT_EQ(a->scales, nearest->scales);  // rounding mode does not change the scales
}

TEST(BlockFormats, StochasticRoundingIsUnbiased) {
  // Row: one 7 (scale exactly 1 for INT4, FP16 scale) then 10^6 copies of 0.3:
  // each rounds to 1 with probability 0.3, to 0 otherwise.
  BlockFormatSpec s;
  s.name = "int4_row";
  s.element = "int4";
  s.granularity = ScaleGranularity::kRow;
  s.scale_type = ScaleType::kFp16;
  auto f = make_block_format(s);
  ASSERT_TRUE(f.ok());
  const int64_t n = 1000001;
  std::vector<float> x(n, 0.3f);
  x[0] = 7.0f;
  QuantizeOptions o;
  o.rounding = Rounding::kStochastic;
  o.seed = 9;
  auto q = quantize(*f, x.data(), 1, n, o);
  ASSERT_TRUE(q.ok());
  std::vector<float> back(n);
  ASSERT_TRUE(dequantize(*f, *q, back.data()).ok());
  EXPECT_EQ(back[0], 7.0f);
  double sum = 0.0;
  for (int64_t i = 1; i < n; ++i) sum += back[i];
  const double mean = sum / static_cast<double>(n - 1);
  const double stderr_of_mean = std::sqrt(0.3 * 0.7 / static_cast<double>(n - 1));
  EXPECT_NEAR(mean, static_cast<double>(0.3f), 3.0 * stderr_of_mean);
}

TEST(BlockFormats, ErrorsNameTheProblem) {
  const BlockFormat& f = named("int4_g128");
  std::vector<float> x(2 * 10, 1.0f);
  x[13] = std::nanf("");
  for (Isa isa : supported_isas()) {
    auto q = quantize(f, x.data(), 2, 10, {}, isa);
    ASSERT_FALSE(q.ok());
    EXPECT_NE(q.status().message().find("x[1, 3]"), std::string::npos) << q.status().message();
  }
  x[13] = 1.0f;
  std::vector<float> importance(9, 1.0f);
  QuantizeOptions o;
  o.search = ScaleSearch::kMseClip;
  o.importance = importance;
  auto bad_importance = quantize(f, x.data(), 2, 10, o);
  ASSERT_FALSE(bad_importance.ok());
  EXPECT_NE(bad_importance.status().message().find("importance"), std::string::npos);
  auto q = quantize(f, x.data(), 2, 10);
  ASSERT_TRUE(q.ok());
  q->codes.pop_back();
  std::vector<float> out(20);
  EXPECT_FALSE(dequantize(f, *q, out.data()).ok());
}

TEST(BlockFormats, CodesArePackedLsbFirst) {
  BlockFormatSpec s;
  s.name = "uint3_row";
  s.element = "uint3";
  s.asymmetric = true;
  s.scale_type = ScaleType::kFp32;
  auto f = make_block_format(s);
  ASSERT_TRUE(f.ok());
  // min 0, max 7 -> scale 1, codes = values: 1 2 3 4 5 6 7 0 -> bits 0x1F58D1 little-endian.
  const std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 0, 5};
  auto q = quantize_reference(*f, x.data(), 1, 9);
  ASSERT_TRUE(q.ok());
  ASSERT_EQ(q->codes.size(), 4u);
  EXPECT_EQ(q->codes[0], 0xD1);
  EXPECT_EQ(q->codes[1], 0x58);
  EXPECT_EQ(q->codes[2], 0x1F);
  EXPECT_EQ(q->codes[3], 0x05);  // ninth code alone, high bits zero
  for (int c = 0; c < 9; ++c) EXPECT_EQ(code_at(*f, *q, 0, c), static_cast<uint32_t>(x[c]));
}

// The asymmetric integer menu (block_formats.cpp): UINTb with an FP16 scale and
// an FP16 minimum per group of G or per row, for every b and G below.
constexpr int kMenuBits[] = {2, 3, 4, 5, 6, 8};
constexpr int kMenuGroups[] = {32, 64, 128, 0};  // 0: per row

// The name each menu entry has: int{b}_g{G}_asym / int{b}_pc_asym, except the two
// the table held before the menu under older names.
std::string menu_name(int bits, int group) {
  if (bits == 3 && group == 128) return "int3_g128";
  if (bits == 2 && group == 64) return "int2_g64";
  const std::string b = std::to_string(bits);
  return group > 0 ? "int" + b + "_g" + std::to_string(group) + "_asym" : "int" + b + "_pc_asym";
}

TEST(BlockFormats, AsymmetricIntMenuHasOneEntryPerWidthAndGroup) {
  for (int bits : kMenuBits) {
    for (int group : kMenuGroups) {
      const std::string name = menu_name(bits, group);
      SCOPED_TRACE(name);
      const BlockFormat* f = find_asymmetric_int_format(bits, group);
      ASSERT_NE(f, nullptr);
      EXPECT_EQ(f->name(), name);
      EXPECT_EQ(f, &named(name));
      EXPECT_EQ(f->element.name, "uint" + std::to_string(bits));
      EXPECT_TRUE(f->spec.asymmetric);
      EXPECT_EQ(f->spec.scale_type, ScaleType::kFp16);
      EXPECT_EQ(f->spec.rule, ScaleRule::kAbsMax);
      EXPECT_EQ(f->spec.granularity, group > 0 ? ScaleGranularity::kGroup : ScaleGranularity::kRow);
      if (group > 0) {
        EXPECT_EQ(f->layout.group_cols, group);
      }
      int same = 0;  // one home per format: no second entry with this layout under another name
      for (const BlockFormat& g : block_formats()) {
        same += g.element.name == f->element.name && g.spec.asymmetric && g.spec.scale_type == ScaleType::kFp16 &&
                g.spec.granularity == f->spec.granularity && g.layout.group_cols == f->layout.group_cols;
      }
      EXPECT_EQ(same, 1);
      // Bits per weight: b code bits + 16 (scale) + 16 (minimum) per group, or per row.
      if (group > 0) {
        EXPECT_DOUBLE_EQ(f->bits_per_element(4096, 4096), bits + 32.0 / group);
        EXPECT_DOUBLE_EQ(f->bits_per_element(3, 8 * group), bits + 32.0 / group);
      } else {
        for (int64_t cols : {64, 1000, 4096}) EXPECT_DOUBLE_EQ(f->bits_per_element(5, cols), bits + 32.0 / cols) << cols;
      }
      if (name != "int3_g128" && name != "int2_g64" && name != "int4_g128_asym") {
        EXPECT_NE(f->spec.description.find("bits per weight"), std::string::npos) << f->spec.description;
      }
    }
  }
  EXPECT_FALSE(find_block_format("int3_g128_asym").ok());  // int3_g128 is that format
  EXPECT_FALSE(find_block_format("int2_g64_asym").ok());   // int2_g64 is that format
  EXPECT_EQ(find_asymmetric_int_format(7, 32), nullptr);
  EXPECT_EQ(find_asymmetric_int_format(4, 16), nullptr);
}

// One matrix with hand-computed codes, FP16 scale and minimum codes per block and
// dequantized values, checked on the reference and on every ISA.
struct AsymGolden {
  AsymGolden(const char* f, int64_t r, int64_t c) : format(f), rows(r), cols(c) {}
  // The next element in row-major order: input, its code, its dequantized value.
  void add(float value, uint32_t code, float decoded) {
    x.push_back(value);
    codes.push_back(code);
    back.push_back(decoded);
  }
  void add_repeated(int n, float value, uint32_t code, float decoded) {
    for (int i = 0; i < n; ++i) add(value, code, decoded);
  }
  const char* format;
  int64_t rows, cols;
  std::vector<float> x;          // [rows, cols]
  std::vector<uint32_t> codes;   // [rows, cols]
  std::vector<float> back;       // [rows, cols]
  std::vector<uint16_t> scales;  // FP16 codes, [rows, groups]
  std::vector<uint16_t> mins;    // FP16 codes, [rows, groups]
};

void check_golden(const AsymGolden& g) {
  SCOPED_TRACE(g.format);
  const BlockFormat& f = named(g.format);
  ASSERT_EQ(g.x.size(), static_cast<size_t>(g.rows * g.cols));
  ASSERT_EQ(g.codes.size(), g.x.size());
  ASSERT_EQ(g.back.size(), g.x.size());
  ASSERT_EQ(static_cast<int64_t>(g.scales.size()), scale_count(f.layout, g.rows, g.cols));
  ASSERT_EQ(g.mins.size(), g.scales.size());
  auto check = [&](const QuantizedTensor& q, const std::string& path) {
    SCOPED_TRACE(path);
    ASSERT_EQ(q.codes.size() + q.scales.size() + q.mins.size(),
              static_cast<size_t>(packed_bytes(f.layout, g.rows, g.cols)));
    for (int64_t r = 0; r < g.rows; ++r) {
      for (int64_t c = 0; c < g.cols; ++c) {
        ASSERT_EQ(code_at(f, q, r, c), g.codes[r * g.cols + c]) << "code (" << r << ", " << c << ") of x = "
                                                                 << g.x[r * g.cols + c];
      }
    }
    for (size_t b = 0; b < g.scales.size(); ++b) {
      EXPECT_EQ(read_scale_code(q.scales.data() + 2 * b, 2), g.scales[b]) << "scale " << b;
      EXPECT_EQ(read_scale_code(q.mins.data() + 2 * b, 2), g.mins[b]) << "min " << b;
    }
    std::vector<float> out(g.x.size());
    ASSERT_TRUE(dequantize_reference(f, q, out.data()).ok());
    EXPECT_TRUE(same_floats(out, g.back));
    for (Isa isa : supported_isas()) {
      ASSERT_TRUE(dequantize(f, q, out.data(), isa).ok());
      EXPECT_TRUE(same_floats(out, g.back)) << isa_name(isa);
    }
  };
  auto ref = quantize_reference(f, g.x.data(), g.rows, g.cols);
  ASSERT_TRUE(ref.ok()) << ref.status().message();
  check(*ref, "reference");
  for (Isa isa : supported_isas()) {
    auto fast = quantize(f, g.x.data(), g.rows, g.cols, {}, isa);
    ASSERT_TRUE(fast.ok());
    check(*fast, isa_name(isa));
  }
}

// FP16 codes used below: 0x3400 = 0.25, 0x3000 = 0.125, 0x2C00 = 0.0625, 0x3E00 = 1.5,
// 0xBC00 = -1, 0xB800 = -0.5, 0xB400 = -0.25, 0xC000 = -2, 0xBE00 = -1.5, 0xCE40 = -25.
TEST(BlockFormats, AsymmetricIntGoldenCodes) {
  {  // int5_g32_asym (codes 0..31), one row of four groups.
    AsymGolden g("int5_g32_asym", 1, 128);
    // Group 0: min -1, max 6.75 -> m = -1, s = 7.75 / 31 = 0.25, code = round(4 (x + 1)):
    // 4.5 -> 4, 5.5 -> 6 and 0.5 -> 0 are ties to even; then a ramp 1.0 .. 6.75 on the grid.
    const float special[8] = {-1.0f, 0.0f, 0.3f, 0.125f, 0.375f, -0.875f, -0.8125f, 6.7f};
    const uint32_t special_codes[8] = {0, 4, 5, 4, 6, 0, 1, 31};
    for (int i = 0; i < 32; ++i) {
      const uint32_t code = i < 8 ? special_codes[i] : static_cast<uint32_t>(i);
      g.add(i < 8 ? special[i] : 0.25f * static_cast<float>(i) - 1.0f, code, 0.25f * static_cast<float>(code) - 1.0f);
    }
    // Group 1: all zero: scale and minimum 0, every code 0.
    g.add_repeated(32, 0.0f, 0, 0.0f);
    // Group 2: constant -0.5: m = -0.5, s = 0.5 / 31 -> FP16 0x2421; every code 0, decoded exactly -0.5.
    g.add_repeated(32, -0.5f, 0, -0.5f);
    // Group 3: constant 0.7: the range widens to [0, 0.7]: m = 0, s = 0.7 / 31 -> FP16 0x25C8 =
    // 1480 * 2^-16; 0.7 / s = 30.997 -> code 31, decoded 31 * 1480 * 2^-16 exactly.
    g.add_repeated(32, 0.7f, 31, 45880.0f / 65536.0f);
    g.scales = {0x3400, 0x0000, 0x2421, 0x25C8};
    g.mins = {0xBC00, 0x0000, 0xB800, 0x0000};
    check_golden(g);
  }
  {  // int6_g64_asym (codes 0..63): a ramp, a positive-only row, a zero row.
    AsymGolden g("int6_g64_asym", 3, 64);
    // Row 0: x = i / 8 - 2: m = -2, s = 7.875 / 63 = 0.125, code i.
    for (int i = 0; i < 64; ++i) g.add(static_cast<float>(i) / 8.0f - 2.0f, i, static_cast<float>(i) / 8.0f - 2.0f);
    // Row 1: x = 2 + (i % 32) / 16 in [2, 3.9375]: the range includes 0, so m = 0 and
    // s = 3.9375 / 63 = 1/16; codes 32 .. 63, the lower half of the grid unused.
    for (int i = 0; i < 64; ++i) {
      const float v = 2.0f + static_cast<float>(i % 32) / 16.0f;
      g.add(v, 32 + i % 32, v);
    }
    g.add_repeated(64, 0.0f, 0, 0.0f);
    g.scales = {0x3000, 0x2C00, 0x0000};
    g.mins = {0xC000, 0x0000, 0x0000};
    check_golden(g);
  }
  {  // int2_g128_asym (codes 0..3): a full group of 128 and a partial group of 2.
    AsymGolden g("int2_g128_asym", 1, 130);
    // min -1.5, max 3: m = -1.5, s = 4.5 / 3 = 1.5, code = round((x + 1.5) / 1.5):
    // 0.75 -> 1.5 and -0.75 -> 0.5 are ties to even (2 and 0).
    const float pattern[8] = {-1.5f, 0.0f, 1.5f, 3.0f, 0.75f, -0.75f, 2.2f, -1.4f};
    const uint32_t pattern_codes[8] = {0, 1, 2, 3, 2, 0, 2, 0};
    for (int i = 0; i < 128; ++i) {
      g.add(pattern[i % 8], pattern_codes[i % 8], 1.5f * static_cast<float>(pattern_codes[i % 8]) - 1.5f);
    }
    // Last group [0.5, -0.25]: m = -0.25, s = 0.75 / 3 = 0.25, codes 3 and 0.
    g.add(0.5f, 3, 0.5f);
    g.add(-0.25f, 0, -0.25f);
    g.scales = {0x3E00, 0x3400};
    g.mins = {0xBE00, 0xB400};
    check_golden(g);
  }
  {  // int8_pc_asym (codes 0..255), one FP16 scale and minimum per row.
    AsymGolden g("int8_pc_asym", 3, 256);
    // Row 0: x = (i - 100) / 4: m = -25, s = 63.75 / 255 = 0.25, code i.
    for (int i = 0; i < 256; ++i) g.add(static_cast<float>(i - 100) / 4.0f, i, static_cast<float>(i - 100) / 4.0f);
    // Row 1: constant 3: m = 0, s = 3 / 255 -> FP16 0x2206 = 1542 * 2^-17; 3 / s = 255.002
    // clamps to 255, decoded 255 * 1542 * 2^-17 exactly.
    g.add_repeated(256, 3.0f, 255, 393210.0f / 131072.0f);
    g.add_repeated(256, 0.0f, 0, 0.0f);
    g.scales = {0x3400, 0x2206, 0x0000};
    g.mins = {0xCE40, 0x0000, 0x0000};
    check_golden(g);
  }
}

// Every code of every menu format: a packed tensor of random codes (each block
// holding code 0 and the top code) with FP16 scales s and minimums m, -vmax s < m <= 0,
// dequantizes to values that quantize back to the same bytes.
TEST(BlockFormats, AsymmetricIntMenuDecodeEncodeIsTheIdentity) {
  std::mt19937_64 rng(5);
  for (int bits : kMenuBits) {
    for (int group : kMenuGroups) {
      const BlockFormat* f = find_asymmetric_int_format(bits, group);
      ASSERT_NE(f, nullptr);
      SCOPED_TRACE(f->name());
      const uint32_t vmax = (1u << bits) - 1;
      for (auto [rows, cols] : {std::pair<int64_t, int64_t>{5, 300}, {2, 1031}, {1, 7}}) {
        const int64_t g = group > 0 ? group : cols;
        const int64_t n_groups = ceil_div(cols, g);
        QuantizedTensor q;
        q.rows = rows;
        q.cols = cols;
        std::vector<uint32_t> codes(static_cast<size_t>(rows * cols));
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t c = 0; c < cols; ++c) {
            const int64_t k = c % g;  // the first two of each block: 0 and the top code
            codes[r * cols + c] = k == 0 ? 0u : k == 1 ? vmax : static_cast<uint32_t>(rng() % (vmax + 1));
          }
        }
        // The LSB-first bit stream of block_format.h, written here independently.
        const int64_t row_bytes = row_code_bytes(bits, cols);
        q.codes.assign(static_cast<size_t>(rows * row_bytes), 0);
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t c = 0; c < cols; ++c) {
            for (int b = 0; b < bits; ++b) {
              const int64_t bit = c * bits + b;
              q.codes[r * row_bytes + bit / 8] |= static_cast<uint8_t>(((codes[r * cols + c] >> b) & 1u) << (bit % 8));
            }
          }
        }
        for (int64_t i = 0; i < rows * n_groups; ++i) {
          // s in [2^-8, 4) with a random mantissa; m = -k s, k in [0, vmax - 1], rounded to FP16.
          const float mantissa = 1.0f + static_cast<float>(rng() % 1024) / 1024.0f;
          const float s = std::ldexp(mantissa, -8 + static_cast<int>(rng() % 10));  // exact in FP16
          // 0 - ...: +0 rather than -0 when k = 0, the minimum quantize stores for a block with 0 in it.
          const float m = 0.0f - fp16_to_float(float_to_fp16(s * static_cast<float>(rng() % vmax)));
          const uint16_t sc = float_to_fp16(s), mc = float_to_fp16(m);
          q.scales.push_back(static_cast<uint8_t>(sc)), q.scales.push_back(static_cast<uint8_t>(sc >> 8));
          q.mins.push_back(static_cast<uint8_t>(mc)), q.mins.push_back(static_cast<uint8_t>(mc >> 8));
        }
        std::vector<float> x(static_cast<size_t>(rows * cols));
        ASSERT_TRUE(dequantize_reference(*f, q, x.data()).ok());
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t c = 0; c < cols; ++c) ASSERT_EQ(code_at(*f, q, r, c), codes[r * cols + c]);
        }
        auto again = quantize_reference(*f, x.data(), rows, cols);
        ASSERT_TRUE(again.ok()) << again.status().message();
        EXPECT_TRUE(same_bytes(q, *again)) << "[" << rows << ", " << cols << "]";
      }
    }
  }
}

}  // namespace
}  // namespace lowbit
