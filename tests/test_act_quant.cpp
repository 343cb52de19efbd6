// Activation fake quantization (quant/act_quant.h) and its linear wrapper
// (model/act_quant_linear.h): known answers computed independently (nearbyint on
// a ramp, saturation at a static threshold), the element path against the
// formats library's FP32-scale formats, named MX/NVFP4 formats against the
// library row by row, and the wrapper equal to quantize-then-dense.
#include <gtest/gtest.h>

#include <cfenv>
#include <cmath>
#include <random>

#include "model/act_quant_linear.h"
#include "quant/act_quant.h"
#include "test_quantize_util.h"
#include "test_util.h"

namespace lowbit {
namespace {

using json = nlohmann::json;
using testing::get;

ActQuantSpec spec_of(const json& j) { return get(parse_act_spec(j, "test")); }

std::vector<float> fake_quant(const ActQuantSpec& spec, const std::vector<float>& x, int64_t rows, float t = 0.0f,
                              ThreadPool* pool = nullptr) {
  const ActQuantizer q = get(ActQuantizer::create(spec));
  std::vector<float> out(x.size());
  const Status st = q.apply(x.data(), rows, static_cast<int64_t>(x.size()) / rows, out.data(), t, pool);
  EXPECT_TRUE(st.ok()) << st.message();
  return out;
}

using testing::gaussian;

TEST(ActQuant, Int8PerTokenOfARampMatchesRoundToNearest) {
  // Row 0: 0, 0.1, ..., 9.9 (amax 9.9); row 1: the negated ramp times 3.
  const int64_t in = 100;
  std::vector<float> x(2 * in);
  for (int64_t c = 0; c < in; ++c) {
    x[c] = 0.1f * static_cast<float>(c);
    x[in + c] = -0.3f * static_cast<float>(c);
  }
  const std::vector<float> got = fake_quant(spec_of({{"format", "int8"}, {"granularity", "token"}}), x, 2);
  ASSERT_EQ(std::fegetround(), FE_TONEAREST);
  for (int64_t r = 0; r < 2; ++r) {
    float amax = 0.0f;
    for (int64_t c = 0; c < in; ++c) amax = std::max(amax, std::fabs(x[r * in + c]));
    const float s = amax / 127.0f;
    for (int64_t c = 0; c < in; ++c) {
      const float want = std::nearbyint(x[r * in + c] / s) * s;
      ASSERT_EQ(got[r * in + c], want) << "row " << r << " col " << c;
    }
    // The row maximum lands exactly on the top code.
    EXPECT_FLOAT_EQ(std::fabs(got[r * in + in - 1]), amax);
  }
}

TEST(ActQuant, PerTensorStaticSaturatesAtTheThreshold) {
  const ActQuantSpec spec = spec_of({{"format", "int8"}, {"granularity", "tensor"}, {"clip", 0.9}});
  ASSERT_TRUE(spec.is_static());
  // T = 1: s = 1/127; 2.5 and -3 saturate; 0.5 · 127 = 63.5 ties to even 64.
  const std::vector<float> x = {2.5f, -3.0f, 0.5f, 0.0f, -1.0f, 1.0f / 127.0f};
  const std::vector<float> got = fake_quant(spec, x, 2, 1.0f);
  const float s = 1.0f / 127.0f;
  EXPECT_EQ(got[0], 127.0f * s);
  EXPECT_EQ(got[1], -127.0f * s);
  EXPECT_EQ(got[2], 64.0f * s);
  EXPECT_EQ(got[3], 0.0f);
  EXPECT_EQ(got[4], -127.0f * s);
  EXPECT_EQ(got[5], 1.0f * s);
  // A static spec needs a usable threshold.
  const ActQuantizer q = get(ActQuantizer::create(spec));
  std::vector<float> out(x.size());
  EXPECT_FALSE(q.apply(x.data(), 2, 3, out.data(), 0.0f).ok());
  EXPECT_FALSE(q.apply(x.data(), 2, 3, out.data(), std::nanf("")).ok());
}

TEST(ActQuant, DynamicClipSaturatesAtClipTimesTheRowMax) {
  // int4 [-7, 7], clip 0.5: the row max 10 → T = 5, s = 5/7; 10 and 6 saturate at 5.
  const std::vector<float> x = {10.0f, 6.0f, -2.0f, 1.0f};
  const std::vector<float> got = fake_quant(spec_of({{"format", "int4"}, {"granularity", "token"}, {"clip", 0.5}}), x, 1);
  const float s = 5.0f / 7.0f;
  EXPECT_EQ(got[0], 7.0f * s);
  EXPECT_EQ(got[1], 7.0f * s);
  EXPECT_EQ(got[2], std::nearbyint(-2.0f / s) * s);  // -2.8 → -3
  EXPECT_EQ(got[3], 1.0f * s);                       // 1.4 → 1
}

TEST(ActQuant, ElementPathEqualsTheLibrarysFp32ScaleFormats) {
  // For clip 1 the element path is the library's FP32 absmax scales per row / per group.
  const int64_t rows = 7, in = 100;  // groups of 32 end with a partial one
  const std::vector<float> x = gaussian(static_cast<size_t>(rows * in), 5, 3.0f);
  for (const char* element : {"int8", "int4", "fp8_e4m3", "fp4_e2m1", "fp6_e2m3"}) {
    for (const bool group : {false, true}) {
      SCOPED_TRACE(std::string(element) + (group ? " group" : " token"));
      BlockFormatSpec s;
      s.name = "ref";
      s.element = element;
      s.granularity = group ? ScaleGranularity::kGroup : ScaleGranularity::kRow;
      s.group_cols = group ? 32 : 1;
      s.scale_type = ScaleType::kFp32;
      const BlockFormat f = get(make_block_format(s));
      std::vector<float> want(x.size());
      const QuantizedTensor q = get(quantize_reference(f, x.data(), rows, in));
      ASSERT_TRUE(dequantize_reference(f, q, want.data()).ok());
      json j = {{"format", element}, {"granularity", group ? "group" : "token"}};
      if (group) j["group"] = 32;
      const std::vector<float> got = fake_quant(spec_of(j), x, rows);
      for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(got[i], want[i]) << "element " << i;
    }
  }
}

TEST(ActQuant, NamedFormatsMatchTheLibraryRowByRow) {
  const int64_t rows = 5, in = 96;
  std::vector<float> x = gaussian(static_cast<size_t>(rows * in), 9);
  x[3] = 40.0f;  // one outlier in row 0, block 0
  ThreadPool pool(2);
  for (const char* name : {"mxfp4", "nvfp4", "mxfp8", "mxint8"}) {
    SCOPED_TRACE(name);
    const ActQuantSpec spec = spec_of({{"format", name}});
    EXPECT_EQ(spec.granularity, ActGranularity::kGroup);
    EXPECT_EQ(spec.group, std::string(name) == "nvfp4" ? 16 : 32);
    const BlockFormat& f = *get(find_block_format(std::string(name) == "mxfp8" ? "mxfp8_e4m3" : name));
    const std::vector<float> got = fake_quant(spec, x, rows, 0.0f, &pool);
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<float> want(static_cast<size_t>(in));
      const QuantizedTensor q = get(quantize_reference(f, x.data() + r * in, 1, in));
      ASSERT_TRUE(dequantize_reference(f, q, want.data()).ok());
      for (int64_t c = 0; c < in; ++c) ASSERT_EQ(got[r * in + c], want[c]) << "row " << r << " col " << c;
    }
  }
}

TEST(ActQuant, ClipOnANamedFormatClampsEachBlockFirst) {
  const int64_t in = 64;
  std::vector<float> x = gaussian(static_cast<size_t>(in), 4);
  x[10] = 30.0f;
  const ActQuantSpec spec = spec_of({{"format", "mxfp4"}, {"clip", 0.25}});
  const std::vector<float> got = fake_quant(spec, x, 1);
  std::vector<float> clamped = x;
  for (int64_t b = 0; b < 2; ++b) {
    float amax = 0.0f;
    for (int64_t i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[b * 32 + i]));
    for (int64_t i = 0; i < 32; ++i) clamped[b * 32 + i] = std::clamp(x[b * 32 + i], -0.25f * amax, 0.25f * amax);
  }
  const std::vector<float> want = fake_quant(spec_of({{"format", "mxfp4"}}), clamped, 1);
  EXPECT_EQ(got, want);
  EXPECT_LE(got[10], 0.25f * 30.0f);
}

TEST(ActQuant, SpecParsingAndErrors) {
  const ActQuantSpec s = spec_of({{"format", "fp8"}, {"granularity", "group"}, {"group", 16}, {"clip", 0.95}});
  EXPECT_EQ(s.group, 16);
  EXPECT_FLOAT_EQ(s.clip, 0.95f);
  EXPECT_EQ(get(parse_act_spec(act_spec_json(s), "round trip")).group, 16);
  EXPECT_EQ(spec_of({{"format", "int8"}}).granularity, ActGranularity::kToken);  // the default
  EXPECT_EQ(spec_of({{"format", "int8_pc"}}).granularity, ActGranularity::kToken);
  EXPECT_EQ(spec_of({{"format", "int4_g128"}}).group, 128);  // a named group format brings its block
  for (const json& bad : {json{{"format", "int8"}, {"clip", 0}}, json{{"format", "int8"}, {"clip", 1.5}},
                          json{{"format", "int8"}, {"granularity", "channel"}}, json{{"format", "nope"}},
                          json{{"format", "uint4"}}, json{{"format", "mxfp4"}, {"group", 16}},
                          json{{"format", "mxfp4"}, {"granularity", "tensor"}}, json{{"format", "fp8_e4m3_b128"}},
                          json{{"format", "int8"}, {"group", 32}}, json{{"formats", "int8"}}, json("int8")}) {
    auto r = parse_act_spec(bad, "rule 3");
    ASSERT_FALSE(r.ok()) << bad.dump();
    EXPECT_NE(r.status().message().find("rule 3"), std::string::npos) << r.status().message();
  }
  // Bits per activation: int8 per token over 576 inputs adds one FP32 scale per row.
  EXPECT_NEAR(act_bits_per_element(spec_of({{"format", "int8"}}), 576), 8.0 + 32.0 / 576, 1e-12);
  EXPECT_NEAR(act_bits_per_element(spec_of({{"format", "int8"}, {"granularity", "tensor"}}), 576), 8.0, 1e-12);
  EXPECT_NEAR(act_bits_per_element(spec_of({{"format", "mxfp4"}}), 576), 4.25, 1e-12);
  // Static thresholds travel with the record.
  const ActQuantAttachment a{spec_of({{"format", "int8"}, {"granularity", "tensor"}}), 2.5f};
  EXPECT_EQ(get(parse_act_attachment(act_attachment_json(a), "r")).static_threshold, 2.5f);
  EXPECT_FALSE(parse_act_attachment(act_spec_json(a.spec), "r").ok());  // static without threshold
}

TEST(ActQuant, NonFiniteInputIsAnError) {
  const ActQuantizer q = get(ActQuantizer::create(spec_of({{"format", "int8"}})));
  const std::vector<float> x = {1.0f, std::nanf(""), 2.0f, 3.0f};
  std::vector<float> out(4);
  EXPECT_FALSE(q.apply(x.data(), 2, 2, out.data(), 0.0f).ok());
}

TEST(ActQuantLinear, EqualsQuantizeThenDense) {
  const int64_t out = 6, in = 40, n = 5;
  Matrix m;
  m.rows = out;
  m.cols = in;
  m.data = gaussian(static_cast<size_t>(out * in), 1);
  m.bias = gaussian(static_cast<size_t>(out), 2);
  const std::vector<float> x = gaussian(static_cast<size_t>(n * in), 3, 2.0f);
  ThreadPool pool(2);
  for (const json& j : {json{{"format", "int4"}}, json{{"format", "int8"}, {"granularity", "tensor"}},
                        json{{"format", "nvfp4"}}}) {
    SCOPED_TRACE(j.dump());
    const ActQuantSpec spec = spec_of(j);
    const float t = 3.0f;
    const std::vector<float> xq = fake_quant(spec, x, n, t);
    const DenseLinear dense(m);
    std::vector<float> want(static_cast<size_t>(n * out)), got(want.size()), one(static_cast<size_t>(out));
    dense.forward(xq.data(), n, want.data(), pool);
    const auto wrapped = get(ActQuantLinear::create(std::make_unique<DenseLinear>(m), get(ActQuantizer::create(spec)), t));
    EXPECT_EQ(wrapped->in_features(), in);
    EXPECT_EQ(wrapped->out_features(), out);
    EXPECT_NE(wrapped->describe().find("act " + spec.format), std::string::npos) << wrapped->describe();
    wrapped->forward(x.data(), n, got.data(), pool);
    EXPECT_EQ(got, want);
    // One token at a time (decode) gives the same rows: nothing depends on the batch.
    for (int64_t r = 0; r < n; ++r) {
      wrapped->forward(x.data() + r * in, 1, one.data(), pool);
      for (int64_t o = 0; o < out; ++o) EXPECT_NEAR(one[o], want[r * out + o], 1e-5f * (1 + std::fabs(one[o])));
    }
  }
  // A static spec without a threshold is refused.
  EXPECT_FALSE(ActQuantLinear::create(std::make_unique<DenseLinear>(m),
                                      get(ActQuantizer::create(spec_of({{"format", "int8"}, {"granularity", "tensor"}}))),
                                      0.0f)
                   .ok());
}

}  // namespace
}  // namespace lowbit
