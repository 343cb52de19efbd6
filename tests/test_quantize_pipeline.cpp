// The sequential quantization pipeline: error metrics with known answers, AWQ
// folding leaving the FP model unchanged, data-aware runs on stories260K (every
// module's output error reported, GPTQ not worse than RTN on the same inputs), and
// no output file after a failure.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "model/loader.h"
#include "model_writers.h"
#include "pipeline/awq_fold.h"
#include "pipeline/linear_quantizer.h"
#include "pipeline/quantize_pipeline.h"
#include "test_quantize_util.h"
#include "test_util.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

using testing::get;

TEST(ReconstructionError, KnownAnswers) {
  // w = [3, 4], q = [3, 3]: ‖Δ‖² = 1, ‖w‖² = 25.
  const float w[] = {3.0f, 4.0f};
  const float q[] = {3.0f, 3.0f};
  EXPECT_DOUBLE_EQ(relative_weight_error(w, q, 2), 1.0 / 25.0);
  EXPECT_DOUBLE_EQ(relative_weight_error(w, w, 2), 0.0);
  const float zero[] = {0.0f, 0.0f};
  EXPECT_DOUBLE_EQ(relative_weight_error(zero, zero, 2), 0.0);
  // One row, H = I: the output error is the weight error.
  EXPECT_DOUBLE_EQ(relative_output_error(w, q, 1, 2, {1, 0, 0, 1}), 1.0 / 25.0);
  // H = x xᵀ for one input x = [1, 2]: ‖Δ·x‖² / ‖w·x‖² = (0·1 + 1·2)² / (3 + 8)².
  EXPECT_NEAR(relative_output_error(w, q, 1, 2, {1, 2, 2, 4}), 4.0 / 121.0, 1e-15);
  // An input channel that never fires (H column 1 zero) hides errors in it.
  EXPECT_DOUBLE_EQ(relative_output_error(w, q, 1, 2, {1, 0, 0, 0}), 0.0);
}

TEST(AwqFold, GqaSharedChannelsAverageOverTheGroup) {
  ModelConfig c;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 2;
  // Heads 0,1 read KV head 0; heads 2,3 read KV head 1. Channel j = h·2 + d.
  const std::vector<float> v = {1, 2, 3, 4, 5, 6, 7, 10};
  const std::vector<float> want = {2, 3, 2, 3, 6, 8, 6, 8};
  EXPECT_EQ(gqa_shared_channels(v, c), want);
}

std::vector<float> random_scales(int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(0.5f, 2.0f);
  std::vector<float> s(static_cast<size_t>(n));
  for (float& x : s) x = u(rng);
  return s;
}

// Folds random scales into every group of every layer.
void fold_everything(LoadedModel& m, uint32_t seed) {
  std::mt19937 rng(seed);
  const ModelConfig& c = m.config;
  for (int i = 0; i < c.n_layers; ++i) {
    for (AwqGroup g : {AwqGroup::kQkv, AwqGroup::kOut, AwqGroup::kGateUp, AwqGroup::kDown}) {
      std::vector<float> s = random_scales(awq_group_width(g, c), rng);
      if (g == AwqGroup::kOut) s = gqa_shared_channels(s, c);
      const Status st = fold_awq_scales(m.weights.layers[static_cast<size_t>(i)], c, i, g, s);
      ASSERT_TRUE(st.ok()) << st.message();
    }
  }
}

TEST(AwqFold, FoldedModelComputesTheSameFunction) {
  std::vector<LoadedModel> models;
  ModelConfig gqa_bias;  // grouped-query attention with q/k/v biases (the v bias is rescaled too)
  gqa_bias.n_layers = 2;
  gqa_bias.dim = 32;
  gqa_bias.n_heads = 4;
  gqa_bias.n_kv_heads = 2;
  gqa_bias.head_dim = 8;
  gqa_bias.ffn_dim = 48;
  gqa_bias.vocab_size = 64;
  gqa_bias.qkv_bias = true;
  models.push_back(testing::make_random_model(gqa_bias, 7));
  const std::string stories = testing::shared_path("models/stories260K/stories260K.gguf");
  if (!stories.empty()) models.push_back(get(load_model(stories, {})));  // 8 heads over 4 KV heads
  const std::vector<int32_t> tokens = {1, 5, 9, 33, 17, 2, 40, 12, 7, 3};
  for (LoadedModel& m : models) {
    SCOPED_TRACE(m.config.vocab_size);
    const std::vector<float> want = get(testing::forward_logits(m, tokens));
    fold_everything(m, 11);
    const std::vector<float> got = get(testing::forward_logits(m, tokens));
    const testing::MaxDiff d = testing::max_abs_diff(want, got);
    EXPECT_LE(d.value, 1e-4f) << "logit " << d.index << ": " << want[d.index] << " vs " << got[d.index];
  }
}

TEST(AwqFold, RejectsScalesItCannotFold) {
  LoadedModel m = testing::make_random_model(
      [] {
        ModelConfig c;
        c.n_layers = 1, c.dim = 16, c.n_heads = 4, c.n_kv_heads = 2, c.head_dim = 4, c.ffn_dim = 24, c.vocab_size = 8;
        return c;
      }(),
      1);
  LayerWeights& l = m.weights.layers[0];
  std::vector<float> s(16, 1.0f);
  s[3] = 2.0f;  // head 0 only: head 1 reads the same KV head with scale 1
  Status st = fold_awq_scales(l, m.config, 0, AwqGroup::kOut, s);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("layers.0"), std::string::npos) << st.message();
  s.assign(16, 1.0f);
  s[5] = 0.0f;
  st = fold_awq_scales(l, m.config, 0, AwqGroup::kQkv, s);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("channel 5"), std::string::npos) << st.message();
  EXPECT_FALSE(fold_awq_scales(l, m.config, 0, AwqGroup::kDown, s).ok());  // 16 scales for 24 channels
}

class PipelineOnStories : public testing::StoriesPipelineTest {
 protected:
  Expected<QuantizeReport> run(const Recipe& recipe, const std::string& out, bool calibrate = true) {
    PipelineOptions o = pipeline_options(out, calibrate);
    return quantize_model(recipe, o);
  }

  static const ModuleReport* find(const QuantizeReport& r, const std::string& name) {
    for (const ModuleReport& m : r.modules) {
      if (m.name == name) return &m;
    }
    return nullptr;
  }

};

TEST_F(PipelineOnStories, GptqReportsEveryModuleAndBeatsRtnOnTheSameInputs) {
  testing::ScopedTempDir dir("pipeline_gptq");
  const QuantizeReport gptq = get(run(get(load_recipe("w4g128-gptq")), dir.file("g.lbq")));
  const QuantizeReport rtn = get(run(get(load_recipe("w4g128-rtn")), dir.file("r.lbq")));
  ASSERT_EQ(gptq.modules.size(), 5u * 7 + 2);  // + token_embedding, lm_head
  for (const ModuleReport& m : gptq.modules) {
    if (m.name == "token_embedding" || m.name == "lm_head") continue;
    ASSERT_TRUE(m.output_rel_error.has_value()) << m.name;
    EXPECT_GT(*m.output_rel_error, 0.0) << m.name;
    EXPECT_LT(*m.output_rel_error, 0.1) << m.name;
    EXPECT_EQ(m.format, "int4_g128_asym");
  }
  // Layer 0's q/k/v read the embeddings in both runs: same H, so GPTQ's objective is comparable.
  for (const char* name : {"layers.0.q_proj", "layers.0.k_proj", "layers.0.v_proj"}) {
    EXPECT_LT(*find(gptq, name)->output_rel_error, *find(rtn, name)->output_rel_error) << name;
    EXPECT_GT(find(gptq, name)->weight_rel_error, 0.0);
  }
  EXPECT_NEAR(gptq.linear_bits_per_weight(), rtn.linear_bits_per_weight(), 1e-12);
  EXPECT_GT(gptq.peak_rss_bytes, 0u);
  EXPECT_EQ(gptq.calibration["n_samples"], 8);
  EXPECT_EQ(gptq.calibration["bos"], "document_start");  // the stories tokenizer adds BOS
  // The file records the recipe and the calibration.
  const LowbitModelFile file = get(LowbitModelFile::open(dir.file("g.lbq")));
  EXPECT_EQ(file.info().recipe["name"], "w4g128-gptq");
  EXPECT_EQ(file.info().calibration, gptq.calibration);
  const json j = report_json(gptq);
  EXPECT_EQ(j["modules"].size(), gptq.modules.size());
  EXPECT_TRUE(j["modules"][1]["output_rel_error"].is_number());
  EXPECT_TRUE(j["modules"][0]["output_rel_error"].is_null());
}

TEST_F(PipelineOnStories, TrueSequentialReadsLaterInputsFromQuantizedPhases) {
  testing::ScopedTempDir dir("pipeline_true_seq");
  auto recipe = [](bool true_sequential) {
    return get(parse_recipe(json{{"name", "ts"},
                                 {"true_sequential", true_sequential},
                                 {"default", {{"method", "gptq"}, {"format", "int3_g128"}}}},
                            "ts.json"));
  };
  const QuantizeReport plain = get(run(recipe(false), dir.file("a.lbq")));
  const QuantizeReport ts = get(run(recipe(true), dir.file("b.lbq")));
  // q/k/v are quantized first in both schemes, from the same H.
  EXPECT_EQ(*find(plain, "layers.0.q_proj")->output_rel_error, *find(ts, "layers.0.q_proj")->output_rel_error);
  // o_proj's H comes from the quantized q/k/v under true-sequential.
  EXPECT_NE(*find(plain, "layers.0.o_proj")->output_rel_error, *find(ts, "layers.0.o_proj")->output_rel_error);
}

TEST_F(PipelineOnStories, AwqFoldsEveryGroupAndStaysClose) {
  testing::ScopedTempDir dir("pipeline_awq");
  const QuantizeReport awq = get(run(get(load_recipe("w4g128-awq")), dir.file("a.lbq")));
  int with_alpha = 0;
  for (const ModuleReport& m : awq.modules) {
    if (m.awq_alpha) {
      ++with_alpha;
      EXPECT_GE(*m.awq_alpha, 0.0f);
      EXPECT_LE(*m.awq_alpha, 1.0f);
    }
  }
  EXPECT_EQ(with_alpha, 5 * 7);
  // The folded norms travel with the file: the reloaded model is as close to the
  // original as plain RTN (a file with unfolded norms would be far off).
  get(run(get(load_recipe("w4g128-rtn")), dir.file("r.lbq")));
  const std::vector<int32_t> tokens = {1, 403, 407, 261, 378, 432, 350, 280, 265, 273, 285, 290};
  const std::vector<float> want = get(testing::forward_logits(get(load_model(model_, {})), tokens));
  auto mean_abs_diff = [&](const std::string& path) {
    const std::vector<float> got = get(testing::forward_logits(get(load_model(path, {})), tokens));
    double sum = 0.0;
    for (size_t i = 0; i < want.size(); ++i) sum += std::fabs(want[i] - got[i]);
    return sum / static_cast<double>(want.size());
  };
  const double awq_diff = mean_abs_diff(dir.file("a.lbq"));
  const double rtn_diff = mean_abs_diff(dir.file("r.lbq"));
  EXPECT_LT(awq_diff, 1.5 * rtn_diff) << "mean |logit difference| to FP32: awq " << awq_diff << ", rtn " << rtn_diff;
}

TEST_F(PipelineOnStories, DataAwareRecipeWithoutCalibrationIsRefused) {
  testing::ScopedTempDir dir("pipeline_nocalib");
  auto r = run(get(load_recipe("w3g128-gptq")), dir.file("x.lbq"), false);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("--calib"), std::string::npos) << r.status().message();
  EXPECT_FALSE(fs::exists(dir.file("x.lbq")));
  EXPECT_FALSE(fs::exists(dir.file("x.lbq.tmp")));
}

TEST_F(PipelineOnStories, FailureMidwayLeavesNoFile) {
  testing::ScopedTempDir dir("pipeline_fail");
  // AWQ on layer 3's q_proj alone cannot fold (k/v share its input): fails after layers 0-2 are written.
  const Recipe recipe = get(parse_recipe(json::parse(R"({"name": "broken",
      "rules": [{"match": "^layers\\.3\\.q_proj$", "method": "awq", "format": "int4_g128_asym"}],
      "default": {"method": "rtn", "format": "int4_g128_asym"}})"),
                                         "broken.json"));
  auto r = run(recipe, dir.file("x.lbq"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("layers.3"), std::string::npos) << r.status().message();
  EXPECT_FALSE(fs::exists(dir.file("x.lbq")));
  EXPECT_FALSE(fs::exists(dir.file("x.lbq.tmp")));
}

}  // namespace
}  // namespace lowbit
