// Scale rules with known answers: the OCP MX shared exponent and its round-up
// variant, NVFP4's two-level scale, scale-type saturation, and the MSE clip search
// (never worse than min-max; the importance-weighted search minimises the
// weighted error). Also the bit-packing kernels against hand-computed streams.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "formats/block_format.h"
#include "formats/block_kernels.h"
#include "formats/format_eval.h"

namespace lowbit {
namespace {

const BlockFormat& named(const std::string& name) {
  auto f = find_block_format(name);
  EXPECT_TRUE(f.ok()) << f.status().message();
  return **f;
}

struct Quantized {
  QuantizedTensor q;
  std::vector<float> back;
};

Quantized run(const BlockFormat& f, const std::vector<float>& x, int64_t rows, const QuantizeOptions& o = {}) {
  const int64_t cols = static_cast<int64_t>(x.size()) / rows;
  auto q = quantize_reference(f, x.data(), rows, cols, o);
  EXPECT_TRUE(q.ok()) << q.status().message();
  Quantized r{std::move(q).value(), std::vector<float>(x.size())};
  EXPECT_TRUE(dequantize_reference(f, r.q, r.back.data()).ok());
  return r;
}

// A 32-element block: `amax` first, then small values (all zero when amax is 0).
std::vector<float> block_with_max(float amax, int n = 32) {
  std::vector<float> x(n, 0.0f);
  x[0] = amax;
  for (int i = 1; i < n && amax != 0.0f; ++i) x[i] = 0.01f * static_cast<float>(i % 5) - 0.02f;
  return x;
}

TEST(ScaleRules, E8m0CodesArePowersOfTwo) {
  for (uint32_t code : {0u, 1u, 100u, 127u, 200u, 254u}) {
    EXPECT_EQ(decode_scale(ScaleType::kE8m0, code), std::ldexp(1.0f, static_cast<int>(code) - 127)) << code;
    EXPECT_EQ(encode_scale(ScaleType::kE8m0, std::ldexp(1.0f, static_cast<int>(code) - 127)), code);
  }
}

TEST(ScaleRules, MxSharedExponentFollowsTheSpec) {
  struct Case {
    const char* format;
    float amax;
    uint32_t e8m0_code;  // 127 + floor(log2 amax) - emax_elem
    float amax_back;     // the block maximum after dequantization
    const char* why;
  };
  const Case cases[] = {
      {"mxfp4", 1.0f, 127 - 2, 1.0f, "floor(log2 1) - 2 = -2: scale 1/4, 1 -> element 4"},
      {"mxfp4", 6.0f, 127 + 0, 6.0f, "6 = 1.5 * 2^2: scale 1, element 6 exactly"},
      {"mxfp4", 7.0f, 127 + 0, 6.0f, "7 / 1 rounds past 6: the spec's rule clips to 6"},
      {"mxfp4", 7.99f, 127 + 0, 6.0f, "floor(log2 7.99) = 2: clipped to 6"},
      {"mxfp4", 8.0f, 127 + 1, 8.0f, "8 = 2^3: scale 2, element 4"},
      {"mxfp4", 0.0f, 0, 0.0f, "all-zero block: smallest scale 2^-127, elements 0"},
      {"mxfp8_e4m3", 1.0f, 127 - 8, 1.0f, "emax(E4M3) = 8 (448 = 1.75 * 2^8)"},
      {"mxfp8_e4m3", 500.0f, 127 + 0, 448.0f, "500 / 1 clips to 448"},
      {"mxfp8_e5m2", 1.0f, 127 - 15, 1.0f, "emax(E5M2) = 15 (57344 = 1.75 * 2^15)"},
      {"mxfp6_e2m3", 1.0f, 127 - 2, 1.0f, "emax(E2M3) = 2 (7.5)"},
      {"mxfp6_e3m2", 1.0f, 127 - 4, 1.0f, "emax(E3M2) = 4 (28)"},
      {"mxint8", 1.0f, 127 + 0, 1.0f, "MXINT8 elements are 1.6 fixed point, emax 0: 1 -> code 64"},
      {"mxint8", 1.999f, 127 + 0, 127.0f / 64.0f, "1.999 * 64 = 127.9 saturates at 127/64"},
  };
  for (const Case& c : cases) {
    const BlockFormat& f = named(c.format);
    const Quantized r = run(f, block_with_max(c.amax), 1);
    ASSERT_EQ(r.q.scales.size(), 1u);
    EXPECT_EQ(r.q.scales[0], c.e8m0_code) << c.format << " amax " << c.amax << ": " << c.why;
    EXPECT_EQ(r.back[0], c.amax_back) << c.format << " amax " << c.amax << ": " << c.why;
  }
  // MXINT8: 1.0 at scale 1 is the INT8 code 64.
  const Quantized r = run(named("mxint8"), block_with_max(1.0f), 1);
  EXPECT_EQ(code_at(named("mxint8"), r.q, 0, 0), 64u);
}

TEST(ScaleRules, RoundUpVariantNeverClips) {
  struct Case {
    float amax;
    uint32_t e8m0_code;
    float amax_back;
    const char* why;
  };
  const Case cases[] = {
      {6.0f, 127, 6.0f, "fits: no doubling"},
      {6.5f, 127, 6.0f, "6.5 rounds to 6 (nearer than the next step, 8): rounding, not clipping"},
      {6.99f, 127, 6.0f, "below the tie point 7"},
      {7.0f, 128, 8.0f, "tie 7 between 6 (odd code) and 8 goes up: doubled, 3.5 -> 4 (even) -> 8"},
      {7.5f, 128, 8.0f, "doubled: 3.75 -> 4"},
      {1.0f, 125, 1.0f, "same as the spec rule when nothing clips"},
  };
  for (const Case& c : cases) {
    const Quantized r = run(named("mxfp4_up"), block_with_max(c.amax), 1);
    EXPECT_EQ(r.q.scales[0], c.e8m0_code) << c.amax << ": " << c.why;
    EXPECT_EQ(r.back[0], c.amax_back) << c.amax << ": " << c.why;
  }
  // On random blocks the round-up variant's error is at most half a step at the
  // top of FP4's grid (1 * scale); the spec's rule clips past that on some blocks.
  const std::vector<float> x = synthetic_matrix(SyntheticInput::kLaplace, 64, 256, 4);
  auto worst_error_in_scales = [&x](const char* name) {
    const Quantized r = run(named(name), x, 64);
    double worst = 0.0;
    for (size_t i = 0; i < x.size(); ++i) {
      const float scale = decode_scale(ScaleType::kE8m0, r.q.scales[i / 32]);
      worst = std::max(worst, std::fabs(static_cast<double>(r.back[i]) - x[i]) / scale);
    }
    return worst;
  };
  EXPECT_LE(worst_error_in_scales("mxfp4_up"), 1.0);
  EXPECT_GT(worst_error_in_scales("mxfp4"), 1.0);
}

TEST(ScaleRules, Nvfp4TwoLevelScale) {
  const BlockFormat& f = named("nvfp4");
  // Block 0 holds the tensor maximum 2688 = 6 * 448: s_tensor = 2688 / (6 * 448) = 1 exactly,
  // its block scale is 448 (UE4M3 0x7E). Block 1's maximum 3 gives 3 / 6 = 0.5 (UE4M3 0x30),
  // and 3 / 0.5 = 6 is the FP4 code 0x7.
  std::vector<float> x(32, 0.0f);
  x[0] = 2688.0f;
  x[5] = -896.0f;  // -896 / 448 = -2: FP4 code 0xC
  x[16] = 3.0f;
  x[17] = 0.25f;   // 0.25 / 0.5 = 0.5: FP4 code 0x1
  const Quantized r = run(f, x, 1);
  EXPECT_EQ(r.q.tensor_scale, 1.0f);
  ASSERT_EQ(r.q.scales.size(), 2u);
  EXPECT_EQ(r.q.scales[0], 0x7E);
  EXPECT_EQ(r.q.scales[1], 0x30);
  EXPECT_EQ(code_at(f, r.q, 0, 0), 0x7u);
  EXPECT_EQ(code_at(f, r.q, 0, 5), 0xCu);
  EXPECT_EQ(code_at(f, r.q, 0, 16), 0x7u);
  EXPECT_EQ(code_at(f, r.q, 0, 17), 0x1u);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(r.back[i], x[i]) << i;

  // A general tensor: s_tensor = amax / 2688 in FP32, and the block holding amax gets scale 448.
  const std::vector<float> g = synthetic_matrix(SyntheticInput::kGaussian, 4, 64, 12);
  float amax = 0.0f;
  for (float v : g) amax = std::max(amax, std::fabs(v));
  const Quantized rg = run(f, g, 4);
  EXPECT_EQ(rg.q.tensor_scale, amax / 2688.0f);
  EXPECT_EQ(*std::max_element(rg.q.scales.begin(), rg.q.scales.end()), 0x7E);
}

TEST(ScaleRules, ScaleTypesSaturateInsteadOfOverflowing) {
  // int4_g128 stores FP16 scales: 1e30 / 7 saturates at 65504 (0x7BFF), no inf.
  const Quantized r = run(named("int4_g128"), block_with_max(1.0e30f, 128), 1);
  EXPECT_EQ(r.q.scales[0] | (r.q.scales[1] << 8), 0x7BFF);
  EXPECT_EQ(r.back[0], 7.0f * 65504.0f);
  EXPECT_EQ(encode_scale(ScaleType::kUe4m3, 1.0e9f), encode_scale(ScaleType::kUe4m3, 448.0f));
  EXPECT_EQ(decode_scale(ScaleType::kBf16, encode_scale(ScaleType::kBf16, 3.4e38f)), scale_type_max(ScaleType::kBf16));
}

TEST(ScaleRules, AsymmetricUsesTheWholeRange) {
  // min -1, max 2 with UINT4: scale 3/15 = 0.2 (FP16 0.199951...), min -1 exact.
  std::vector<float> x(128);
  for (int i = 0; i < 128; ++i) x[i] = -1.0f + 3.0f * static_cast<float>(i) / 127.0f;
  const BlockFormat& f = named("int4_g128_asym");
  const Quantized r = run(f, x, 1);
  EXPECT_EQ(code_at(f, r.q, 0, 0), 0u);
  EXPECT_EQ(code_at(f, r.q, 0, 127), 15u);
  EXPECT_EQ(r.back[0], -1.0f);
  EXPECT_NEAR(r.back[127], 2.0f, 2e-3);
  // The range always includes 0 (GPTQ): a constant positive block has m = 0 and
  // every value on the top code 15, with the FP16 scale 0.75 / 15.
  const Quantized c = run(f, std::vector<float>(128, 0.75f), 1);
  for (int i = 0; i < 128; ++i) {
    EXPECT_EQ(code_at(f, c.q, 0, i), 15u);
    EXPECT_EQ(c.back[i], 15.0f * decode_scale(ScaleType::kFp16, encode_scale(ScaleType::kFp16, 0.75f / 15.0f)));
  }
  // A constant negative block: m = the value (FP16), scale 0, every code 0.
  const Quantized n = run(f, std::vector<float>(128, -0.5f), 1);
  for (float v : n.back) EXPECT_EQ(v, -0.5f);
}

double weighted_sse(const std::vector<float>& x, const std::vector<float>& q, int64_t cols,
                    const std::vector<float>* w) {
  double s = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double d = static_cast<double>(x[i]) - q[i];
    s += (w != nullptr ? (*w)[i % cols] : 1.0) * d * d;
  }
  return s;
}

TEST(ScaleRules, MseClipSearchIsNeverWorseThanMinMax) {
  const int64_t rows = 16, cols = 512;
  QuantizeOptions mse;
  mse.search = ScaleSearch::kMseClip;
  for (SyntheticInput input : {SyntheticInput::kGaussian, SyntheticInput::kOutlier, SyntheticInput::kLaplace}) {
    const std::vector<float> x = synthetic_matrix(input, rows, cols, 21);
    for (const char* name : {"int8_pc", "int4_g128", "int4_g128_asym", "int3_g128", "int2_g64", "fp8_e4m3", "mxfp4",
                             "nvfp4", "nf4_g64"}) {
      const BlockFormat& f = named(name);
      const double e_minmax = weighted_sse(x, run(f, x, rows).back, cols, nullptr);
      const double e_mse = weighted_sse(x, run(f, x, rows, mse).back, cols, nullptr);
      EXPECT_LE(e_mse, e_minmax * (1 + 1e-12)) << name << " " << synthetic_input_name(input);
    }
  }
  // Low-bit integers on Gaussian data gain from clipping (GPTQ's and llama.cpp's observation).
  const std::vector<float> x = synthetic_matrix(SyntheticInput::kGaussian, rows, cols, 22);
  for (const char* name : {"int3_g128", "int4_g128"}) {
    const BlockFormat& f = named(name);
    EXPECT_LT(weighted_sse(x, run(f, x, rows, mse).back, cols, nullptr),
              0.97 * weighted_sse(x, run(f, x, rows).back, cols, nullptr))
        << name;
  }
}

TEST(ScaleRules, ImportanceWeightedSearchMinimisesTheWeightedError) {
  const int64_t rows = 16, cols = 512;
  const std::vector<float> x = synthetic_matrix(SyntheticInput::kGaussian, rows, cols, 31);
  // imatrix-like weights: a few columns carry most of the importance.
  std::vector<float> w(cols);
  for (int64_t c = 0; c < cols; ++c) w[c] = (c % 16 == 3) ? 50.0f : 0.2f + 0.01f * static_cast<float>(c % 9);
  QuantizeOptions plain;
  plain.search = ScaleSearch::kMseClip;
  QuantizeOptions weighted = plain;
  weighted.importance = w;
  for (const char* name : {"int4_g128", "int3_g128", "nf4_g64", "mxfp4", "nvfp4"}) {
    const BlockFormat& f = named(name);
    const double e_weighted = weighted_sse(x, run(f, x, rows, weighted).back, cols, &w);
    const double e_plain = weighted_sse(x, run(f, x, rows, plain).back, cols, &w);
    const double e_minmax = weighted_sse(x, run(f, x, rows).back, cols, &w);
    EXPECT_LE(e_weighted, e_plain * (1 + 1e-12)) << name;
    EXPECT_LE(e_weighted, e_minmax * (1 + 1e-12)) << name;
  }
  // And it is the minimum over its grid: coarser grids whose ratios are a subset
  // (1 - i * 0.5/10 and 1 - i * 0.5/5 are exactly ratios of the 20-step grid) do no better.
  const BlockFormat& f = named("int4_g128");
  const double e_weighted = weighted_sse(x, run(f, x, rows, weighted).back, cols, &w);
  for (int steps : {5, 10}) {
    QuantizeOptions coarse = weighted;
    coarse.clip_steps = steps;
    EXPECT_LE(e_weighted, weighted_sse(x, run(f, x, rows, coarse).back, cols, &w) * (1 + 1e-12)) << steps;
  }
}

TEST(ScaleRules, PackKernelsMatchHandComputedStreams) {
  const ScaleKernels& k = scalar_scale_kernels();
  struct Case {
    int bits;
    std::vector<uint16_t> codes;
    std::vector<uint8_t> bytes;
  };
  const Case cases[] = {
      {4, {0x1, 0x2, 0xF}, {0x21, 0x0F}},                     // low nibble first
      {3, {1, 2, 3, 4, 5, 6, 7, 0}, {0xD1, 0x58, 0x1F}},      // 8 codes = 3 bytes, crossing bytes
      {6, {0x3F, 0x00, 0x15, 0x2A}, {0x3F, 0x50, 0xA9}},      // 4 codes = 3 bytes
      {5, {0x1F, 0x01}, {0x3F, 0x00}},                        // 0x1F | 1 << 5
      {2, {3, 0, 1, 2, 1}, {0x93, 0x01}},
      {16, {0x1234}, {0x34, 0x12}},
  };
  for (const Case& c : cases) {
    std::vector<uint8_t> out(row_code_bytes(c.bits, static_cast<int64_t>(c.codes.size())), 0xAA);
    k.pack(c.codes.data(), static_cast<int64_t>(c.codes.size()), c.bits, out.data());
    EXPECT_EQ(out, c.bytes) << c.bits << " bits";
    std::vector<uint16_t> back(c.codes.size());
    k.unpack(c.bytes.data(), static_cast<int64_t>(back.size()), c.bits, back.data());
    EXPECT_EQ(back, c.codes) << c.bits << " bits";
  }
}

TEST(ScaleRules, PackKernelsAgreeAcrossIsas) {
  if (!isa_supported(Isa::kAvx512, detect_cpu_features())) GTEST_SKIP() << "no AVX-512 on this CPU";
  std::mt19937 rng(5);
  for (int bits = 1; bits <= 16; ++bits) {
    for (int64_t n : {1, 3, 7, 31, 32, 33, 64, 255, 4097}) {
      std::vector<uint16_t> codes(n);
      for (auto& c : codes) c = static_cast<uint16_t>(rng() & ((1u << bits) - 1u));
      const int64_t bytes = row_code_bytes(bits, n);
      std::vector<uint8_t> a(bytes + 1, 0x55), b(bytes + 1, 0x55);  // +1: must stay untouched
      scalar_scale_kernels().pack(codes.data(), n, bits, a.data());
      avx512_scale_kernels().pack(codes.data(), n, bits, b.data());
      ASSERT_EQ(a, b) << bits << " bits, n = " << n;
      ASSERT_EQ(b[bytes], 0x55);
      std::vector<uint16_t> back(n);
      avx512_scale_kernels().unpack(a.data(), n, bits, back.data());
      ASSERT_EQ(back, codes) << bits << " bits, n = " << n;
    }
  }
}

}  // namespace
}  // namespace lowbit
