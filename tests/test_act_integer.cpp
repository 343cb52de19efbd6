// The recipe's activation spec selects the integer kernels (issue 7): the
// kernels' activation quantizers give the same codes and scales as the
// simulation (quant/act_quant) bit for bit, and a stories260K model quantized
// with a W8A8 / W4A8 / W4A4 recipe runs its linears on the integer kernels with
// the simulated PPL (only the float summation order differs).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <optional>
#include <sstream>
#include <utility>

#include "eval/perplexity.h"
#include "kernels/w8a8.h"
#include "model/act_quant_linear.h"
#include "model/loader.h"
#include "model/online_hadamard_linear.h"
#include "model/packed_convert.h"
#include "model/packed_linear.h"
#include "model/quantized_linear.h"
#include "model_writers.h"
#include "pipeline/recipe.h"
#include "quant/act_quant.h"
#include "quant/quantized_weight.h"
#include "test_quant_util.h"
#include "test_quantize_util.h"
#include "test_util.h"

namespace lowbit {
namespace {

using testing::get;

// [tokens, cols] Gaussian activations with a few exact rounding ties, an outlier and an all-zero token.
std::vector<float> awkward_activations(int64_t tokens, int64_t cols, uint64_t seed) {
  std::vector<float> x = testing::gaussian(tokens, cols, seed, 1.0f);
  for (int64_t t = 0; t < tokens; ++t) {
    float* xt = x.data() + t * cols;
    xt[0] = t % 2 == 0 ? 6.0f : -6.0f;                       // amax: s = 6/127 (or 6/7)
    if (cols > 2) xt[cols / 2] = 6.0f * 2.5f / 127.0f;       // a tie in x/s for INT8 (up to float rounding)
    if (cols > 3) xt[cols - 1] = 4.0f * 6.0f / 7.0f * 0.5f;  // near a tie for INT4
  }
  if (tokens > 2) std::fill(x.begin() + cols, x.begin() + 2 * cols, 0.0f);
  return x;
}

// The simulation's output for x under `spec` (threshold for static specs).
std::vector<float> simulated(const ActQuantSpec& spec, const std::vector<float>& x, int64_t tokens, int64_t cols,
                             float threshold) {
  const ActQuantizer q = get(ActQuantizer::create(spec));
  std::vector<float> out(x.size());
  EXPECT_TRUE(q.apply(x.data(), tokens, cols, out.data(), threshold).ok());
  return out;
}

TEST(IntegerActivations, Int8CodesAndScalesEqualTheSimulation) {
  for (const auto& [granularity, clip] :
       {std::pair{ActGranularity::kToken, 1.0f}, std::pair{ActGranularity::kToken, 0.9f},
        std::pair{ActGranularity::kTensor, 1.0f}}) {
    ActQuantSpec spec;
    spec.format = "int8";
    spec.granularity = granularity;
    spec.clip = clip;
    const float threshold = 3.5f;  // static: values beyond saturate
    for (int64_t tokens : {1, 3, 17}) {
      for (int64_t cols : {1, 31, 32, 33, 255, 4097}) {
        SCOPED_TRACE(::testing::Message()
                     << act_granularity_name(granularity) << " clip " << clip << " " << tokens << "x" << cols);
        const std::vector<float> x = awkward_activations(tokens, cols, 7 + tokens * cols);
        const std::vector<float> want = simulated(spec, x, tokens, cols, threshold);
        const int64_t padded = (cols + 31) / 32 * 32;
        Int8Activations a;
        IntActRule rule;
        rule.clip = clip;
        rule.static_threshold = spec.is_static() ? threshold : 0.0f;
        quantize_activations_int8(x.data(), tokens, cols, padded, a, rule);
        int64_t mismatches = 0, first = -1;
        for (int64_t t = 0; t < tokens; ++t) {
          for (int64_t c = 0; c < padded; ++c) {
            const int q = static_cast<int>(a.u8[t * padded + c]) - 128;
            if (c >= cols) {
              mismatches += q != 0;
              continue;
            }
            const float got = static_cast<float>(q) * a.scale[t];
            if (got != want[t * cols + c]) mismatches += 1, first = first < 0 ? t * cols + c : first;
          }
        }
        EXPECT_EQ(mismatches, 0) << "first at " << first << ": simulated " << want[first];
      }
    }
  }
}

TEST(IntegerActivations, NonFiniteTokenGivesNanScale) {
  std::vector<float> x = {1.0f, std::nanf(""), 2.0f, 0.5f, -1.0f, 0.25f};
  Int8Activations a;
  quantize_activations_int8(x.data(), 2, 3, 32, a);
  EXPECT_TRUE(std::isnan(a.scale[0]));
  EXPECT_EQ(a.scale[1], 1.0f / 127.0f);
}

TEST(IntegerActivations, SpecsWithoutAnExactKernelKeepTheSimulation) {
  PackedMatrix int8w;
  int8w.kind = PackedKind::kInt8Row;
  PackedMatrix fp8w;
  fp8w.kind = PackedKind::kFp8Row;
  ActQuantAttachment a;
  a.spec.format = "int8";
  EXPECT_EQ(PackedLinear::integer_act_unsupported(int8w, a), "");
  EXPECT_NE(PackedLinear::integer_act_unsupported(fp8w, a), "");
  a.spec.granularity = ActGranularity::kGroup;
  EXPECT_NE(PackedLinear::integer_act_unsupported(int8w, a), "");
  a.spec.granularity = ActGranularity::kToken;
  a.spec.format = "fp8_e4m3";
  EXPECT_NE(PackedLinear::integer_act_unsupported(int8w, a), "");
}

// One linear, integer kernel vs ActQuantLinear around the same packed weight:
// the same codes and scales, so the outputs differ only by float summation order:
// |y_int - y_sim| <= (K / 16 + 16) * 2^-24 * sum_c |w_c| |xq_c| (both paths' recursive
// summation bounds; K = cols_padded, xq the fake-quantized input).
TEST(IntegerActivations, PackedLinearEqualsTheSimulatedLinear) {
  ThreadPool pool(2);
  struct Case {
    const char* weight;
    const char* act;
    ActGranularity granularity;
    int group;
  };
  for (const Case& k : {Case{"int8_pc", "int8", ActGranularity::kToken, 0},
                        Case{"int8_pc", "int8", ActGranularity::kTensor, 0},
                        Case{"int4_g128_asym", "int8", ActGranularity::kToken, 0},
                        Case{"int4_g128", "int4", ActGranularity::kToken, 0},
                        Case{"int4_g128_asym", "int4", ActGranularity::kGroup, 32}}) {
    for (const auto& [rows, cols] : {std::pair<int64_t, int64_t>{64, 172}, {33, 1000}}) {
      SCOPED_TRACE(::testing::Message() << k.weight << " x " << k.act << " " << act_granularity_name(k.granularity)
                                        << " [" << rows << ", " << cols << "]");
      const std::vector<float> wv = testing::gaussian(rows, cols, 1 + cols, 0.05f);
      QuantizedWeight q;
      q.format = k.weight;
      q.tensor = get(quantize_matrix(k.weight, wv.data(), rows, cols));
      // The simulation runs the portable FP32 GEMV: the fixed-point GEMVs of the AVX2
      // and VNNI levels (kernels/lut4_fixed16.h) would add their own 16-bit rounding of xq.
      const Isa sim_isa = Isa::kGeneric;
      auto make = [&](Isa isa) {
        return get(PackedLinear::create(get(pack_quantized_weight(q)), {}, k.weight, LinearActivation{}, isa));
      };
      ActQuantAttachment a;
      a.spec.format = k.act;
      a.spec.granularity = k.granularity;
      if (k.group > 0) a.spec.group = k.group;
      a.static_threshold = 2.0f;
      const std::unique_ptr<PackedLinear> fp32 = make(active_isa());
      const std::unique_ptr<PackedLinear> integer =
          get(fp32->with_activation(get(PackedLinear::integer_activation(fp32->packed(), a))));
      const PackedMatrix& w = integer->packed();
      auto sim = get(ActQuantLinear::create(make(sim_isa), get(ActQuantizer::create(a.spec)), a.static_threshold));
      for (int64_t n : {1, 5, 64}) {
        const std::vector<float> x = testing::gaussian(n, cols, 2 + n, 1.0f);
        const std::vector<float> xq = simulated(a.spec, x, n, cols, a.static_threshold);
        std::vector<float> y1(static_cast<size_t>(n * rows)), y2(y1.size());
        integer->forward(x.data(), n, y1.data(), pool);
        sim->forward(x.data(), n, y2.data(), pool);
        for (int64_t t = 0; t < n; ++t) {
          for (int64_t r = 0; r < rows; ++r) {
            double mag = 0.0;
            for (int64_t c = 0; c < cols; ++c) mag += std::fabs(packed_value(w, r, c) * xq[t * cols + c]);
            const double bound = (w.cols_padded / 16.0 + 16.0) * 0x1.0p-24 * mag;
            ASSERT_LE(std::fabs(y1[t * rows + r] - y2[t * rows + r]), bound)
                << "token " << t << " row " << r << ": " << y1[t * rows + r] << " vs " << y2[t * rows + r];
          }
        }
      }
    }
  }
}

struct ActRecipeCase {
  const char* recipe;
  const char* kernel_prefix;
  double max_ppl_change;  // bound on |PPL integer / PPL simulated − 1|
  // (lo, hi) of the integer path's PPL, where it is pinned.
  std::optional<std::pair<double, double>> ppl_band;
};

// stories260K quantized with a recipe carrying an act spec, loaded twice: with
// the integer kernels selected from the spec and with the simulation only.
class IntegerActStories : public testing::StoriesPipelineTest, public ::testing::WithParamInterface<ActRecipeCase> {
 protected:
  struct Run {
    LlamaModel model;
    ActAttachReport report;
  };

  // integer: kernels selected from the spec; else the simulation around the
  // packed linears, or (packed false) around the dequantized FP32 weights.
  // Assembled as the CLI does (cli/common.cpp load_runnable): a rotated model's
  // down_proj input gets its online Hadamard transform, outermost.
  Run runtime(const LoadedModel& loaded, bool integer, bool packed = true) {
    Run r{get(LlamaModel::create(loaded.config, loaded.weights)), {}};
    EXPECT_TRUE(attach_quantized_linears(r.model, loaded.quantized_linears, {.packed = packed}).ok());
    ActAttachOptions o;
    o.integer_kernels = integer;
    EXPECT_TRUE(attach_act_quantizers(r.model, loaded.act_quantizers, o, &r.report).ok());
    if (loaded.rotation) {
      EXPECT_TRUE(attach_online_rotations(r.model, *loaded.rotation).ok());
    }
    return r;
  }

  // PPL over 8 chunks of 256 tokens (llama.cpp protocol): batched prompts, or
  // `batch` tokens per forward call (2: the GEMV path of the packed linears).
  double ppl(const LoadedModel& loaded, const LlamaModel& model, int batch = 0) {
    std::ifstream in(text_);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::vector<int32_t> tokens = loaded.tokenizer->encode(ss.str());
    PplOptions o;
    o.ctx = 256;
    o.max_chunks = 8;
    o.bos_id = loaded.tokenizer->bos_id();
    o.batch = batch;
    ThreadPool pool(2);
    return get(evaluate_perplexity(model, tokens, o, pool)).ppl;
  }
};

TEST_P(IntegerActStories, SpecSelectsTheIntegerKernelWithTheSimulatedPpl) {
  const auto& [recipe, kernel_prefix, max_ppl_change, ppl_band] = GetParam();
  testing::ScopedTempDir dir(std::string("intact_") + recipe);
  ASSERT_TRUE(quantize_model(get(load_recipe(recipe)), pipeline_options(dir.file("m.lbq"))).ok());
  const LoadedModel loaded = get(load_model(dir.file("m.lbq"), {}));
  const int n_act = 7 * loaded.config.n_layers;  // every decoder linear; lm_head has none
  ASSERT_EQ(static_cast<int>(loaded.act_quantizers.size()), n_act);

  Run integer = runtime(loaded, true);
  const Run sim = runtime(loaded, false);
  ASSERT_EQ(integer.report.integer.size(), 1u);
  const std::string kernel = integer.report.integer.begin()->first;
  EXPECT_EQ(kernel.rfind(kernel_prefix, 0), 0u) << kernel;
  EXPECT_EQ(integer.report.integer.begin()->second, n_act);
  EXPECT_TRUE(integer.report.simulated.empty());
  EXPECT_TRUE(sim.report.integer.empty());
  const Linear* down = integer.model.find_linear("layers.1.down_proj");
  if (const auto* rotated = dynamic_cast<const OnlineHadamardLinear*>(down)) down = &rotated->inner();
  const auto* p = dynamic_cast<const PackedLinear*>(down);
  ASSERT_NE(p, nullptr) << "the integer path must not keep an ActQuantLinear wrapper";
  EXPECT_EQ(p->kernel_name(), kernel);

  const double a = ppl(loaded, integer.model), b = ppl(loaded, sim.model), c = ppl(loaded, sim.model, 2);
  std::printf("%s: PPL integer %.7f, simulated %.7f (ratio - 1 = %.2e); simulated by 2 tokens %.7f (%.2e); %s\n",
              recipe, a, b, a / b - 1.0, c, c / b - 1.0, kernel.c_str());
  // Each linear gives the simulated output up to float summation order (the
  // linear-level test above: ~1e-7 relative), but quantized activations make the
  // model chaotic under float rounding (as a quantized KV cache, eval/perplexity.h):
  // a value a few ulps from a code boundary rounds to the other code, the change
  // perturbs the later layers and flips more codes. The simulation itself moves as
  // much when only its own float order changes (GEMV by 2 tokens instead of sgemm).
  // Measured |integer / simulated - 1| natively (AVX-512), under LOWBIT_ISA=avx2
  // and generic (equal), and on OpenBLAS's Haswell sgemm: w8a8-dyn 2.6e-4, 2.0e-4,
  // 1.1e-3; w8a8 2.1e-4, 2.1e-4, 5.4e-4; w4a8-gptq 5.2e-4, 9.5e-4, 2.1e-4;
  // w4a4-gptq at most 2e-8 (INT4's coarse grid is rarely hit by ulp changes);
  // w4a4-rot-gptq 5.4e-3, 5.4e-3, 5.1e-3. The simulation by 2 tokens vs in one
  // pass, over the same runs: up to 7.9e-4, 3.1e-3, 2.1e-3, 2.5e-2 and 3.1e-2.
  // The bound is 3x the largest integer-vs-simulation difference of the recipe:
  // 3e-3, and 1.6e-2 for w4a4-rot-gptq.
  EXPECT_LT(std::fabs(a / b - 1.0), max_ppl_change) << recipe;
  // w4a4-rot-gptq through the CLI (quantize --calib tinystories_validation_head.txt
  // --calib-samples 8 --calib-len 64 --seed 3; ppl --ctx 256 --chunks 8): PPL 4.125
  // with any of the ISA levels, 4.110 on the Haswell sgemm; quantized on the Haswell
  // sgemm (GPTQ's float order changes some weight codes) 4.167, and this test
  // measures 4.160 there (issue 14: 4.16 on a Zen 3). The band is 4.125 ± 4%,
  // about 2.7x that ±1.5% spread; it excludes the model without rotation
  // (w4a4-gptq, 5.34), the FP32 model (3.580) and the model assembled without its
  // online rotations (about 24,500).
  if (ppl_band) {
    EXPECT_GT(a, ppl_band->first) << recipe;
    EXPECT_LT(a, ppl_band->second) << recipe;
  }
}

INSTANTIATE_TEST_SUITE_P(Recipes, IntegerActStories,
                         ::testing::Values(ActRecipeCase{"w8a8-dyn", "w8a8/", 3e-3, {}},
                                           ActRecipeCase{"w8a8", "w8a8/", 3e-3, {}},
                                           ActRecipeCase{"w4a8-gptq", "w4a8/", 3e-3, {}},
                                           ActRecipeCase{"w4a4-gptq", "w4a4/", 3e-3, {}},
                                           ActRecipeCase{"w4a4-rot-gptq", "w4a4/", 1.6e-2, std::pair{3.96, 4.29}}),
                         [](const auto& info) {
                           std::string n = info.param.recipe;
                           for (char& ch : n) ch = std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
                           return n;
                         });

}  // namespace
}  // namespace lowbit
