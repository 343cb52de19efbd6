// AdaQuant refinement and bias correction (quant/adaquant.h) with known answers:
//  - H = I: the objective is the weights' squared error, which round-to-nearest
//    already minimises for fixed scales: with the scales fixed nothing changes.
//  - A planted problem: a 2 x 2 coupled block of H (ρ = 0.9) whose RTN errors
//    (0.45, 0.35) of one step are lowered by rounding the first weight up
//    instead: from 0.6085 to 0.0785 step² (all four roundings enumerated here);
//    the optimiser finds exactly that code.
//  - The proxy error never increases: more steps never end higher than fewer,
//    and the result is never above its start (RTN or GPTQ), for integer,
//    symmetric, two-level (NVFP4) and power-of-two (MXFP4) formats.
//  - Bias correction makes the mean output error on the calibration inputs zero.
//  - Recipe options: parsed, refused where they cannot apply (one-line errors),
//    counted in the size; the pipeline stores the corrected biases.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "model/llama_model.h"
#include "model/loader.h"
#include "model/lowbit_file.h"
#include "model/quantized_linear.h"
#include "model_writers.h"
#include "pipeline/quantize_pipeline.h"
#include "pipeline/recipe.h"
#include "quant/adaquant.h"
#include "quant/quantizers.h"
#include "test_quant_util.h"
#include "test_quantize_util.h"
#include "test_util.h"

namespace lowbit {
namespace {

using nlohmann::json;
using testing::dequantized;
using testing::gaussian;
using testing::get;
using testing::least_squares;
using testing::named_format;

std::vector<double> identity(int64_t n) {
  std::vector<double> h(static_cast<size_t>(n * n), 0.0);
  for (int64_t j = 0; j < n; ++j) h[j * n + j] = 1.0;
  return h;
}

QuantizedWeight rtn(const BlockFormat& f, const std::vector<float>& w, int64_t rows, int64_t cols) {
  return get(quantize_rtn(f, w.data(), rows, cols, RtnOptions{}));
}

double proxy(const std::vector<float>& w, const QuantizedWeight& q, const std::vector<double>& h) {
  return hessian_proxy_error(w.data(), dequantized(q).data(), q.rows(), q.cols(), h);
}

TEST(AdaQuant, IdentityHessianLeavesRoundToNearestUnchanged) {
  for (const char* name : {"int4_g128_asym", "int3_g128", "int4_g128", "int8_pc", "nvfp4", "mxfp4"}) {
    const BlockFormat& f = named_format(name);
    const int64_t rows = 16, cols = 300;  // a partial last group of 44
    const std::vector<float> w = gaussian(rows, cols, 11);
    const QuantizedWeight start = rtn(f, w, rows, cols);
    AdaQuantOptions o;
    o.scales = false;
    o.damp = 0.0f;
    AdaQuantStats stats;
    const QuantizedWeight got = get(adaquant_refine(f, start, w.data(), rows, cols, identity(cols), o, &stats));
    EXPECT_TRUE(stats.kept_start) << name;
    EXPECT_EQ(stats.codes_changed, 0) << name;
    EXPECT_EQ(stats.steps_run, 1) << name << ": the first sweep changes nothing";
    EXPECT_EQ(got.tensor.codes, start.tensor.codes) << name;
    EXPECT_EQ(got.tensor.scales, start.tensor.scales) << name;
  }
}

// Row r: [127, w1, w2], int8_pc (FP32 scale = max|w| / 127 = 1 exactly); H =
// diag(1) ⊕ [[1, ρ], [ρ, 1]]. The anchor is on the grid; the pair rounds down
// with errors (e1, e2) = (0.45, 0.35) + small float offsets.
TEST(AdaQuant, PlantedRoundingFlipIsFound) {
  const BlockFormat& f = named_format("int8_pc");
  const int64_t rows = 3, cols = 3;
  const double rho = 0.9;
  std::vector<double> h = {1, 0, 0, 0, 1, rho, 0, rho, 1};
  std::vector<float> w;
  for (int64_t r = 0; r < rows; ++r) {
    const float base = 10.0f * static_cast<float>(r + 1);
    w.insert(w.end(), {127.0f, base + 0.45f, base - 20.0f + 0.35f});
  }
  const QuantizedWeight start = rtn(f, w, rows, cols);
  // The error of each of the four roundings of the pair, enumerated.
  auto pair_error = [&](int64_t r, int up1, int up2) {
    const double e1 = w[r * 3 + 1] - (std::floor(w[r * 3 + 1]) + up1);
    const double e2 = w[r * 3 + 2] - (std::floor(w[r * 3 + 2]) + up2);
    return e1 * e1 + e2 * e2 + 2.0 * rho * e1 * e2;
  };
  double start_error = 0.0, best_error = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    start_error += pair_error(r, 0, 0);
    double best = pair_error(r, 0, 0);
    for (int up1 : {0, 1}) {
      for (int up2 : {0, 1}) best = std::min(best, pair_error(r, up1, up2));
    }
    EXPECT_EQ(best, pair_error(r, 1, 0)) << "the planted optimum rounds the first weight up";
    best_error += best;
  }
  // float offsets aside: 3 · 0.6085 and 3 · 0.0785
  EXPECT_NEAR(start_error, 3 * 0.6085, 1e-5);
  EXPECT_NEAR(best_error, 3 * 0.0785, 1e-5);
  EXPECT_NEAR(proxy(w, start, h), start_error, 1e-9 * start_error);

  AdaQuantOptions o;
  o.damp = 0.0f;
  o.scales = false;
  AdaQuantStats stats;
  const QuantizedWeight got = get(adaquant_refine(f, start, w.data(), rows, cols, h, o, &stats));
  EXPECT_FALSE(stats.kept_start);
  EXPECT_EQ(stats.codes_changed, rows);
  for (int64_t r = 0; r < rows; ++r) {
    EXPECT_EQ(static_cast<int8_t>(code_at(f, got.tensor, r, 1)), static_cast<int>(std::floor(w[r * 3 + 1])) + 1);
    EXPECT_EQ(static_cast<int8_t>(code_at(f, got.tensor, r, 2)), static_cast<int>(std::floor(w[r * 3 + 2])));
  }
  // The stored weight's error is the enumerated optimum (values exact: scale 1, integer codes).
  EXPECT_NEAR(proxy(w, got, h), best_error, 1e-12);
  EXPECT_NEAR(stats.start_error - stats.final_error, start_error - best_error, 1e-9);
}

struct Case {
  const char* format;
  bool gptq;
};

TEST(AdaQuant, ErrorNeverIncreases) {
  const Case cases[] = {{"int4_g128_asym", false}, {"int4_g128_asym", true}, {"int3_g128", false},
                        {"int3_g128", true},       {"int4_g128", false},     {"nvfp4", false},
                        {"mxfp4", false},          {"int2_g64", true}};
  for (const Case& c : cases) {
    const BlockFormat& f = named_format(c.format);
    const testing::Problem p = least_squares(24, 200, 5);
    const QuantizedWeight start =
        c.gptq ? get(quantize_gptq(f, p.w.data(), p.rows, p.cols, p.h, GptqOptions{})) : rtn(f, p.w, p.rows, p.cols);
    const double e0 = proxy(p.w, start, p.h);
    double previous = e0;
    for (int steps : {1, 2, 4, 8}) {
      AdaQuantOptions o;
      o.steps = steps;
      o.damp = 0.0f;  // the objective is then the proxy error itself
      AdaQuantStats stats;
      const QuantizedWeight got = get(adaquant_refine(f, start, p.w.data(), p.rows, p.cols, p.h, o, &stats));
      const double e = proxy(p.w, got, p.h);
      EXPECT_LE(e, e0) << c.format << (c.gptq ? " gptq" : " rtn") << " steps " << steps;
      EXPECT_LE(e, previous) << c.format << " steps " << steps << ": more steps continue the same descent";
      EXPECT_NEAR(stats.start_error, e0, 1e-9 * e0);
      EXPECT_NEAR(stats.final_error, e, 1e-9 * e0);
      previous = e;
    }
    // RTN ignores H: on these correlated inputs some rounding is always worth flipping.
    if (!c.gptq) {
      EXPECT_LT(previous, e0) << c.format;
    }
  }
}

TEST(AdaQuant, DampedObjectiveAndScaleFitNeverIncrease) {
  const BlockFormat& f = named_format("int3_g128");
  const testing::Problem p = least_squares(16, 256, 9);
  const QuantizedWeight start = rtn(f, p.w, p.rows, p.cols);
  AdaQuantOptions o;  // defaults: damp 0.01, scales on
  AdaQuantStats stats;
  const QuantizedWeight got = get(adaquant_refine(f, start, p.w.data(), p.rows, p.cols, p.h, o, &stats));
  EXPECT_LT(stats.final_error, stats.start_error);
  EXPECT_GT(stats.scales_changed, 0);
  std::vector<double> damped = p.h;
  double mean = 0.0;
  for (int64_t j = 0; j < p.cols; ++j) mean += p.h[j * p.cols + j] / p.cols;
  for (int64_t j = 0; j < p.cols; ++j) damped[j * p.cols + j] += 0.01 * mean;
  EXPECT_NEAR(proxy(p.w, got, damped), stats.final_error, 1e-9 * stats.start_error);
  EXPECT_NEAR(proxy(p.w, start, damped), stats.start_error, 1e-9 * stats.start_error);
}

TEST(AdaQuant, ScaleFitOnIdentityLowersTheWeightError) {
  // H = I with the scales free: min-max scales are not least-squares ones, so the
  // weights' squared error drops (and never rises).
  const BlockFormat& f = named_format("int4_g128_asym");
  const int64_t rows = 8, cols = 256;
  const std::vector<float> w = gaussian(rows, cols, 3);
  const QuantizedWeight start = rtn(f, w, rows, cols);
  AdaQuantOptions o;
  o.damp = 0.0f;
  AdaQuantStats stats;
  const QuantizedWeight got = get(adaquant_refine(f, start, w.data(), rows, cols, identity(cols), o, &stats));
  EXPECT_LT(testing::sum_sq_diff(w, dequantized(got)), testing::sum_sq_diff(w, dequantized(start)));
}

TEST(AdaQuant, ParallelRowsGiveTheSameBytes) {
  const BlockFormat& f = named_format("int4_g128_asym");
  const testing::Problem p = least_squares(40, 160, 2);
  const QuantizedWeight start = rtn(f, p.w, p.rows, p.cols);
  ThreadPool pool(3);
  const QuantizedWeight one = get(adaquant_refine(f, start, p.w.data(), p.rows, p.cols, p.h, {}, nullptr, nullptr));
  const QuantizedWeight three = get(adaquant_refine(f, start, p.w.data(), p.rows, p.cols, p.h, {}, nullptr, &pool));
  EXPECT_EQ(one.tensor.codes, three.tensor.codes);
  EXPECT_EQ(one.tensor.scales, three.tensor.scales);
  EXPECT_EQ(one.tensor.mins, three.tensor.mins);
}

TEST(AdaQuant, RefusesWhatItCannotRefine) {
  const BlockFormat& f = named_format("int4_g128_asym");
  const std::vector<float> w = gaussian(int64_t{4}, int64_t{64}, 1);
  QuantizedWeight start = rtn(f, w, 4, 64);
  const std::vector<double> h = identity(64);
  auto bad_h = adaquant_refine(f, start, w.data(), 4, 64, identity(63), {});
  ASSERT_FALSE(bad_h.ok());
  EXPECT_NE(bad_h.status().message().find("H has 3969 values"), std::string::npos) << bad_h.status().message();
  AdaQuantOptions zero;
  zero.steps = 0;
  EXPECT_FALSE(adaquant_refine(f, start, w.data(), 4, 64, h, zero).ok());
  EXPECT_FALSE(adaquant_refine(named_format("int3_g128"), start, w.data(), 4, 64, h, {}).ok());
  start.outliers.push_back({0, 0, 1.0f});
  auto side = adaquant_refine(f, start, w.data(), 4, 64, h, {});
  ASSERT_FALSE(side.ok());
  EXPECT_EQ(side.status().message().find('\n'), std::string::npos);
}

TEST(BiasCorrection, MeanOutputErrorOnTheCalibrationMeanIsZero) {
  const BlockFormat& f = named_format("int3_g128");
  const int64_t rows = 12, cols = 200, n = 64;
  const std::vector<float> w = gaussian(rows, cols, 21);
  std::vector<float> x = gaussian(n, cols, 22);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t j = 0; j < cols; ++j) x[t * cols + j] += 0.5f + 0.01f * static_cast<float>(j);  // non-zero mean
  }
  const std::vector<float> wq = dequantized(rtn(f, w, rows, cols));
  std::vector<double> mean(static_cast<size_t>(cols), 0.0);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t j = 0; j < cols; ++j) mean[j] += x[t * cols + j] / static_cast<double>(n);
  }
  const std::vector<float> b = bias_correction(w.data(), wq.data(), rows, cols, mean);
  ASSERT_EQ(b.size(), static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    // Mean over the inputs of x_t·(w_r − ŵ_r) − b_r, in double.
    double err = 0.0, scale = 0.0, before = 0.0;
    for (int64_t t = 0; t < n; ++t) {
      double y = 0.0;
      for (int64_t j = 0; j < cols; ++j) {
        const double d = static_cast<double>(w[r * cols + j]) - wq[r * cols + j];
        y += x[t * cols + j] * d;
        scale += std::fabs(x[t * cols + j] * d) / static_cast<double>(n);
      }
      before += y / static_cast<double>(n);
      err += (y - b[r]) / static_cast<double>(n);
    }
    // b is the double sum rounded to float (2^-24 relative), and the double sums
    // here and there differ by at most ~2 · cols · 2^-53 · Σ|x d| each.
    const double bound = std::ldexp(std::fabs(static_cast<double>(b[r])), -24) + 4.0 * cols * std::ldexp(scale, -53);
    EXPECT_LE(std::fabs(err), bound) << "row " << r;
    EXPECT_GT(std::fabs(before), 100.0 * bound) << "row " << r << ": the correction had work to do";
  }
}

Recipe parse(const json& doc) { return get(parse_recipe(doc, "test")); }

std::string parse_error(const json& doc) {
  auto r = parse_recipe(doc, "test");
  EXPECT_FALSE(r.ok());
  if (r.ok()) return "";
  EXPECT_EQ(r.status().message().find('\n'), std::string::npos) << r.status().message();
  return r.status().message();
}

TEST(AdaQuantRecipe, OptionsParseAndErrorsNameTheRule) {
  const Recipe r = parse({{"name", "x"},
                          {"default",
                           {{"method", "gptq"},
                            {"format", "int3_g128"},
                            {"options", {{"adaquant_steps", 3}, {"adaquant_scales", false}, {"bias_correction", true}}}}}});
  EXPECT_EQ(r.default_rule.options.adaquant_steps, 3);
  EXPECT_FALSE(r.default_rule.options.adaquant_scales);
  EXPECT_TRUE(r.default_rule.options.bias_correction);
  EXPECT_TRUE(get(r.needs_calibration(smollm2_135m_config())));
  const json rtn_ada = {{"name", "x"}, {"default", {{"method", "rtn"}, {"format", "int4_g128_asym"},
                                                    {"options", {{"adaquant_steps", 2}}}}}};
  EXPECT_TRUE(get(parse(rtn_ada).needs_calibration(smollm2_135m_config())));

  auto with = [](const char* method, const char* format, json options) {
    return json{{"name", "x"}, {"default", {{"method", method}, {"format", format}, {"options", options}}}};
  };
  EXPECT_NE(parse_error(with("rtn", "int4_g128_asym", {{"adaquant_steps", -1}})).find(
                "option 'adaquant_steps' must be an integer in [0, 1000], got -1"),
            std::string::npos);
  EXPECT_NE(parse_error(with("rtn", "int4_g128_asym", {{"bias_correction", 1}})).find(
                "option 'bias_correction' must be true or false"),
            std::string::npos);
  EXPECT_NE(parse_error(with("easyquant", "int4_g128_asym", {{"adaquant_steps", 2}})).find(
                "default: option 'adaquant_steps' applies to rtn, gptq and awq only, not \"easyquant\""),
            std::string::npos);
  EXPECT_NE(parse_error(with("none", "fp16", {{"bias_correction", true}})).find("bias_correction"), std::string::npos);
  EXPECT_NE(parse_error(with("gptq", "q4_K", {{"adaquant_steps", 2}})).find(
                "adaquant refines scaled formats (formats/block_format.h), not GGUF type \"q4_K\""),
            std::string::npos);
  EXPECT_NE(parse_error(with("gptq", "tcq2_g64", {{"adaquant_steps", 2}})).find(
                "adaquant refines scaled formats (formats/block_format.h), not trellis codes \"tcq2_g64\""),
            std::string::npos);
  EXPECT_NE(parse_error(with("rtn", "ptq161_s125_b192", {{"adaquant_steps", 2}})).find(
                "adaquant refines scaled formats (formats/block_format.h), not PTQ1.61 format \"ptq161_s125_b192\""),
            std::string::npos);
  const json head = {{"name", "x"},
                     {"rules", json::array({{{"match", "^lm_head$"}, {"method", "rtn"}, {"format", "int8_pc"},
                                             {"options", {{"bias_correction", true}}}}})},
                     {"default", {{"method", "rtn"}, {"format", "int4_g128_asym"}}}};
  EXPECT_NE(parse_error(head).find("lm_head matches rule 0 (/^lm_head$/) with adaquant_steps or bias_correction"),
            std::string::npos);
}

TEST(AdaQuantRecipe, BuiltinsAndBiasBitsInTheSize) {
  const Recipe rtn_ada = get(load_recipe("w4g128-rtn-ada"));
  EXPECT_EQ(rtn_ada.default_rule.method, QuantMethod::kRtn);
  EXPECT_GT(rtn_ada.default_rule.options.adaquant_steps, 0);
  const Recipe gptq_ada = get(load_recipe("w3g128-gptq-ada"));
  EXPECT_EQ(gptq_ada.default_rule.method, QuantMethod::kGptq);
  EXPECT_GT(gptq_ada.default_rule.options.adaquant_steps, 0);
  // An FP32 bias of `rows` values on a [rows, cols] weight: 32 / cols bits per weight more.
  QuantRule rule = rtn_ada.default_rule;
  const double plain = get(rule_bits_per_weight(rule, 576, 1536));
  rule.options.bias_correction = true;
  EXPECT_DOUBLE_EQ(get(rule_bits_per_weight(rule, 576, 1536)), plain + 32.0 / 1536.0);
}

class AdaQuantPipeline : public testing::StoriesPipelineTest {};

// The file's logits on a few tokens, the model run as `lowbit ppl` loads it.
Expected<std::vector<float>> file_logits(const std::string& path, const std::vector<int32_t>& tokens) {
  LB_ASSIGN_OR_RETURN(LoadedModel loaded, load_model(path, {}));
  LB_ASSIGN_OR_RETURN(LlamaModel model, LlamaModel::create(loaded.config, std::move(loaded.weights)));
  LB_RETURN_IF_ERROR(attach_quantized_linears(model, std::move(loaded.quantized_linears)));
  ThreadPool pool(1);
  auto cache = model.make_fp32_cache(static_cast<int>(tokens.size()));
  std::vector<float> logits(tokens.size() * static_cast<size_t>(model.config().vocab_size));
  LB_RETURN_IF_ERROR(model.forward(tokens.data(), static_cast<int>(tokens.size()), 0, *cache, logits.data(), pool));
  return logits;
}

TEST_F(AdaQuantPipeline, RefinesLayerZeroAndStoresCorrectedBiases) {
  testing::ScopedTempDir dir("adaquant_pipeline");
  auto recipe_with = [](json options) {
    return get(parse_recipe(
        {{"name", "t"}, {"default", {{"method", "rtn"}, {"format", "int4_g128_asym"}, {"options", options}}}}, "t"));
  };
  const QuantizeReport plain = get(quantize_model(recipe_with(json::object()), pipeline_options(dir.file("rtn.lbq"))));
  const std::string out = dir.file("ada.lbq");
  const QuantizeReport ada =
      get(quantize_model(recipe_with({{"adaquant_steps", 2}, {"bias_correction", true}}), pipeline_options(out)));
  ASSERT_EQ(plain.modules.size(), ada.modules.size());
  int64_t changed = 0;
  for (size_t i = 0; i < ada.modules.size(); ++i) {
    const ModuleReport& m = ada.modules[i];
    if (m.name.rfind("layers.", 0) != 0) continue;
    EXPECT_TRUE(m.bias_corrected) << m.name;
    changed += m.adaquant_codes_changed;
    // Layer 0's q/k/v see the same inputs in both runs (the first phase of the first
    // layer), so AdaQuant's output error cannot be above RTN's there.
    if (m.name == "layers.0.q_proj" || m.name == "layers.0.k_proj" || m.name == "layers.0.v_proj") {
      ASSERT_TRUE(m.output_rel_error && plain.modules[i].output_rel_error);
      EXPECT_LE(*m.output_rel_error, *plain.modules[i].output_rel_error) << m.name;
    }
  }
  EXPECT_GT(changed, 0);
  const LowbitModelFile file = get(LowbitModelFile::open(out));
  for (const char* suffix : {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}) {
    EXPECT_TRUE(file.has(fmt::format("layers.0.{}.bias", suffix))) << suffix;
  }
  const LoadedModel loaded = get(load_model(out, {}));
  EXPECT_EQ(loaded.weights.layers[0].o_proj.bias.size(), static_cast<size_t>(loaded.config.dim));
  const std::vector<int32_t> tokens = {1, 403, 407, 261, 378, 432, 350, 280};
  for (float v : get(file_logits(out, tokens))) ASSERT_TRUE(std::isfinite(v));
}

}  // namespace
}  // namespace lowbit
