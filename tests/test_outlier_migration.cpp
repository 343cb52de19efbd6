// SmoothQuant and Outlier Suppression+ (pipeline/outlier_migration.h): scales
// with known answers, exact folds (a shifted and scaled model computes the same
// function: random model with GQA and biases, stories260K through the pipeline
// and the file), and a layer with planted outlier channels that loses far less
// at W8A8 per-tensor after migration than before.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "model/decoder_block.h"
#include "model/loader.h"
#include "model_writers.h"
#include "pipeline/layer_quantizer.h"
#include "pipeline/outlier_migration.h"
#include "pipeline/quantize_pipeline.h"
#include "test_quantize_util.h"
#include "test_util.h"

namespace lowbit {
namespace {

using json = nlohmann::json;
using testing::get;

Matrix matrix(int64_t rows, int64_t cols, std::vector<float> data) {
  Matrix m;
  m.rows = rows;
  m.cols = cols;
  m.data = std::move(data);
  return m;
}

TEST(SmoothQuant, ScalesHaveTheClosedForm) {
  // Channel 0: max|X| 4, max|W| 1 (over both linears); channel 1: 1 and 4; channel 2 never fires.
  const Matrix a = matrix(2, 3, {1, -4, 2, 0.5, 1, 1});
  const Matrix b = matrix(1, 3, {-0.25, 2, 3});
  const std::vector<MigrationLinear> linears = {{&a, nullptr, {}}, {&b, nullptr, {}}};
  const std::vector<float> x_max = {4, 1, 0};
  const std::vector<float> s = smoothquant_scales(x_max, linears, 0.5f);
  EXPECT_FLOAT_EQ(s[0], 2.0f);  // sqrt(4) / sqrt(1)
  EXPECT_FLOAT_EQ(s[1], 0.5f);  // sqrt(1) / sqrt(4)
  EXPECT_EQ(s[2], 1.0f);
  const std::vector<float> s1 = smoothquant_scales(x_max, linears, 1.0f);  // all difficulty to the weights
  EXPECT_FLOAT_EQ(s1[0], 4.0f);
  EXPECT_FLOAT_EQ(s1[1], 1.0f);
  const std::vector<float> s0 = smoothquant_scales(x_max, linears, 0.0f);
  EXPECT_FLOAT_EQ(s0[0], 1.0f);
  EXPECT_FLOAT_EQ(s0[1], 0.25f);
}

TEST(OutlierMigration, ErrorIsZeroWithoutQuantizationAndTheShiftIsExact) {
  std::mt19937 rng(3);
  std::normal_distribution<float> d(0.0f, 1.0f);
  const int64_t rows = 16, in = 8, out = 5;
  std::vector<float> w(static_cast<size_t>(out * in)), x(static_cast<size_t>(rows * in));
  for (float& v : w) v = d(rng);
  for (float& v : x) v = d(rng) + 3.0f;
  const Matrix m = matrix(out, in, w);
  ThreadPool pool(1);
  const std::vector<MigrationLinear> fp = {{&m, nullptr, {}}};
  std::vector<float> z(static_cast<size_t>(in), 3.0f), s(static_cast<size_t>(in), 2.0f);
  EXPECT_LT(get(migration_error(fp, x.data(), rows, in, z, s, pool)), 1e-12);
  // With INT8 activations per tensor, centring the channels around 3 helps.
  const ActQuantSpec a8 = get(parse_act_spec({{"format", "int4"}, {"granularity", "tensor"}}, "t"));
  const std::vector<MigrationLinear> q = {{&m, nullptr, a8}};
  const std::vector<float> ones(static_cast<size_t>(in), 1.0f);
  EXPECT_LT(get(migration_error(q, x.data(), rows, in, z, ones, pool)),
            0.5 * get(migration_error(q, x.data(), rows, in, {}, ones, pool)));
}

// Folds random shifts and scales into every group a layer allows.
void migrate_everything(LoadedModel& m, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.5f, 2.0f), shift(-0.3f, 0.3f);
  const ModelConfig& c = m.config;
  for (int i = 0; i < c.n_layers; ++i) {
    LayerWeights& l = m.weights.layers[static_cast<size_t>(i)];
    for (AwqGroup g : {AwqGroup::kQkv, AwqGroup::kGateUp}) {
      std::vector<float> z(static_cast<size_t>(c.dim)), s(static_cast<size_t>(c.dim));
      for (float& v : z) v = shift(rng);
      for (float& v : s) v = u(rng);
      ASSERT_TRUE(fold_channel_shift(l, c, i, g, z).ok());
      ASSERT_TRUE(fold_awq_scales(l, c, i, g, s).ok());
    }
    {  // o_proj's input through v_proj's bias: one shift and scale per KV group's channel
      const int group = c.n_heads / c.n_kv_heads;
      std::vector<float> z(static_cast<size_t>(c.q_dim())), s(z.size());
      for (int h = 0; h < c.n_heads; ++h) {
        for (int d = 0; d < c.head_dim; ++d) {
          const size_t j = static_cast<size_t>(h * c.head_dim + d);
          const size_t first = static_cast<size_t>((h / group) * group * c.head_dim + d);
          z[j] = h % group == 0 ? shift(rng) : z[first];
          s[j] = h % group == 0 ? u(rng) : s[first];
        }
      }
      ASSERT_TRUE(fold_channel_shift(l, c, i, AwqGroup::kOut, z).ok());
      ASSERT_TRUE(fold_awq_scales(l, c, i, AwqGroup::kOut, s).ok());
    }
  }
}

TEST(OutlierMigration, ShiftedAndScaledModelComputesTheSameFunction) {
  std::vector<LoadedModel> models;
  ModelConfig gqa_bias;
  gqa_bias.n_layers = 2;
  gqa_bias.dim = 32;
  gqa_bias.n_heads = 4;
  gqa_bias.n_kv_heads = 2;
  gqa_bias.head_dim = 8;
  gqa_bias.ffn_dim = 48;
  gqa_bias.vocab_size = 64;
  gqa_bias.qkv_bias = true;
  models.push_back(testing::make_random_model(gqa_bias, 5));
  const std::string stories = testing::shared_path("models/stories260K/stories260K.gguf");
  if (!stories.empty()) models.push_back(get(load_model(stories, {})));
  const std::vector<int32_t> tokens = {1, 5, 9, 33, 17, 2, 40, 12, 7, 3};
  for (LoadedModel& m : models) {
    SCOPED_TRACE(m.config.vocab_size);
    const std::vector<float> want = get(testing::forward_logits(m, tokens));
    migrate_everything(m, 13);
    EXPECT_FALSE(m.weights.layers[0].attn_norm_bias.empty());
    EXPECT_FALSE(m.weights.layers[0].gate_proj.bias.empty());
    EXPECT_FALSE(m.weights.layers[0].o_proj.bias.empty());
    const std::vector<float> got = get(testing::forward_logits(m, tokens));
    float scale = 0.0f;
    for (float v : want) scale = std::max(scale, std::fabs(v));
    const testing::MaxDiff d = testing::max_abs_diff(want, got);
    EXPECT_LE(d.value, 1e-4f * scale) << "logit " << d.index << ": " << want[d.index] << " vs " << got[d.index];
  }
}

TEST(OutlierMigration, ShiftsOnlyWhereExact) {
  LoadedModel m = testing::make_random_model(
      [] {
        ModelConfig c;
        c.n_layers = 1, c.dim = 16, c.n_heads = 4, c.n_kv_heads = 2, c.head_dim = 4, c.ffn_dim = 24, c.vocab_size = 8;
        return c;
      }(),
      1);
  EXPECT_FALSE(fold_channel_shift(m.weights.layers[0], m.config, 0, AwqGroup::kDown, std::vector<float>(24)).ok());
  EXPECT_FALSE(fold_channel_shift(m.weights.layers[0], m.config, 0, AwqGroup::kQkv, std::vector<float>(15)).ok());
  EXPECT_FALSE(fold_channel_shift(m.weights.layers[0], m.config, 0, AwqGroup::kOut, std::vector<float>(15)).ok());
  // Heads 0 and 1 share KV head 0: a shift of channel 5 (head 1) unlike channel 1 (head 0) has no exact fold.
  std::vector<float> z(16, 0.25f);
  z[5] = 0.5f;
  const Status s = fold_channel_shift(m.weights.layers[0], m.config, 0, AwqGroup::kOut, z);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("channel 5"), std::string::npos) << s.message();
  EXPECT_TRUE(m.weights.layers[0].v_proj.bias.empty()) << "a refused shift changes nothing";
  z[5] = 0.25f;
  ASSERT_TRUE(fold_channel_shift(m.weights.layers[0], m.config, 0, AwqGroup::kOut, z).ok());
  EXPECT_EQ(m.weights.layers[0].v_proj.bias, std::vector<float>(8, -0.25f));  // kv_dim = 2 heads x 4
}

// Each o_proj input channel's range becomes the union over the heads of its KV group.
TEST(OutlierMigration, OutputRangesAreMergedOverEachKvGroup) {
  ModelConfig c;
  c.n_heads = 4, c.n_kv_heads = 2, c.head_dim = 2;
  ChannelRange::Range r;
  r.min = {-1, 0, -3, 1, 0, 0, -2, -5};  // head h: channels 2h, 2h + 1
  r.max = {1, 2, 0, 4, 6, 1, 1, 0};
  const ChannelRange::Range u = gqa_union_range(r, c);
  EXPECT_EQ(u.min, (std::vector<float>{-3, 0, -3, 0, -2, -5, -2, -5}));
  EXPECT_EQ(u.max, (std::vector<float>{1, 4, 1, 4, 6, 1, 6, 1}));
}

TEST(MigrationRecipe, KeysParseAndErrorsNameTheRecipe) {
  const json def = {{"method", "rtn"}, {"format", "int8_pc"}};
  const Recipe r = get(parse_recipe({{"name", "r"}, {"smooth", {{"alpha", 0.8}, {"groups", {"out", "down"}}}},
                                     {"osp", {{"grid", 5}}}, {"default", def}},
                                    "r.json"));
  ASSERT_TRUE(r.smooth && r.osp);
  EXPECT_FLOAT_EQ(r.smooth->alpha, 0.8f);
  EXPECT_EQ(r.smooth->groups, (std::vector<AwqGroup>{AwqGroup::kOut, AwqGroup::kDown}));
  EXPECT_EQ(r.osp->groups, (std::vector<AwqGroup>{AwqGroup::kQkv, AwqGroup::kGateUp}));
  EXPECT_TRUE(get(r.needs_calibration(smollm2_135m_config())));  // channel statistics even for RTN
  for (const json& bad : {json{{"smooth", {{"alpha", 1.5}}}}, json{{"smooth", {{"groups", {"qkv", "qkv"}}}}},
                          json{{"smooth", {{"groups", {"lm_head"}}}}}, json{{"osp", {{"groups", {"down"}}}}},
                          json{{"osp", {{"grid", 0}}}}, json{{"smooth", {{"beta", 1}}}},
                          json{{"smooth", json::object()}, {"osp", json::object()}}}) {
    json doc = bad;
    doc["name"] = "bad";
    doc["default"] = def;
    auto parsed = parse_recipe(doc, "bad.json");
    ASSERT_FALSE(parsed.ok()) << doc.dump();
    EXPECT_NE(parsed.status().message().find("bad.json"), std::string::npos) << parsed.status().message();
  }
}

TEST(MigrationRecipe, BuiltinsOfTheIssueExist) {
  for (const char* name : {"w8a8", "w8a8-smooth", "w8a8-osp", "w8a8-dyn", "w4a8-gptq", "w4a8-rot-gptq", "w4a4-gptq",
                           "w4a4-rot-gptq", "w4a4-rot-smooth-gptq", "fp8", "mxfp4-w4a4", "nvfp4-w4a4",
                           "mxfp4-w4a4-rot", "nvfp4-w4a4-rot"}) {
    auto r = load_recipe(name);
    ASSERT_TRUE(r.ok()) << name << ": " << r.status().message();
    EXPECT_TRUE(r->default_rule.act.has_value()) << name;
    EXPECT_FALSE(get(r->rule_for("lm_head"))->act.has_value()) << name;  // the head keeps FP32 inputs
  }
  EXPECT_TRUE(load_recipe("w8a8-smooth")->smooth.has_value());
  EXPECT_TRUE(load_recipe("w8a8-osp")->osp.has_value());
  for (const char* name : {"w4a8-rot-gptq", "w4a4-rot-gptq", "w4a4-rot-smooth-gptq", "mxfp4-w4a4-rot", "nvfp4-w4a4-rot"}) {
    EXPECT_TRUE(load_recipe(name)->rotation.has_value()) << name;
  }
  EXPECT_TRUE(load_recipe("w4a4-rot-smooth-gptq")->smooth->search);
  const RecipeSize w4a4 = get(recipe_size(get(load_recipe("w4a4-gptq")), smollm2_135m_config()));
  // Seven FP32 scales per token per layer over 6 · 576 + 1536 inputs.
  EXPECT_NEAR(w4a4.act_bits, 4.0 + 32.0 * 7 / (6 * 576 + 1536), 1e-9);
}

// ---------------------------------------------------------------------------- pipeline

class MigrationOnStories : public testing::StoriesPipelineTest {
 protected:
  Expected<QuantizeReport> run(const json& recipe, const std::string& out) {
    PipelineOptions o = pipeline_options(out);
    LB_ASSIGN_OR_RETURN(Recipe r, parse_recipe(recipe, "test"));
    return quantize_model(r, o);
  }

};

TEST_F(MigrationOnStories, FoldedFp32ModelKeepsItsLogits) {
  testing::ScopedTempDir dir("migration_fp32");
  const json fp32 = {{"method", "none"}, {"format", "fp32"}};
  const std::vector<int32_t> tokens = {1, 403, 407, 261, 378, 432, 350, 280, 265, 273, 285, 290};
  const std::vector<float> want = get(testing::forward_logits(get(load_model(model_, {})), tokens));
  float scale = 0.0f;
  for (float v : want) scale = std::max(scale, std::fabs(v));
  // Every tensor FP32, the embedding included (unmatched tables would be FP16).
  const json tables = json::array({{{"match", "^(token_embedding|lm_head)$"}, {"method", "none"}, {"format", "fp32"}}});
  const std::vector<json> recipes = {{{"name", "smooth"},
                                      {"smooth", {{"alpha", 0.5}, {"groups", {"qkv", "gateup", "out", "down"}}}},
                                      {"rules", tables},
                                      {"default", fp32}},
                                     {{"name", "osp"},
                                      {"osp", {{"grid", 4}}},
                                      {"smooth", {{"alpha", 0.7}, {"groups", {"down"}}}},
                                      {"rules", tables},
                                      {"default", fp32}},
                                     {{"name", "osp-out"},
                                      {"osp", {{"grid", 4}, {"groups", {"qkv", "out", "gateup"}}}},
                                      {"smooth", {{"alpha", 0.7}, {"groups", {"down"}}}},
                                      {"rules", tables},
                                      {"default", fp32}}};
  for (const json& recipe : recipes) {
    SCOPED_TRACE(recipe["name"].get<std::string>());
    const std::string out = dir.file(recipe["name"].get<std::string>() + ".lbq");
    const QuantizeReport report = get(run(recipe, out));
    int migrated = 0;
    for (const ModuleReport& m : report.modules) migrated += !m.migration.empty();
    EXPECT_EQ(migrated, recipe["name"] == "osp" ? 5 * 6 : 5 * 7);
    const LoadedModel loaded = get(load_model(out, {}));
    if (recipe["name"] == "osp") {
      EXPECT_EQ(loaded.weights.layers[3].ffn_norm_bias.size(), 64u);
      EXPECT_EQ(loaded.weights.layers[3].up_proj.bias.size(), 172u);
      EXPECT_TRUE(loaded.weights.layers[3].o_proj.bias.empty());
    }
    if (recipe["name"] == "osp-out") {  // o_proj's input shifted through v_proj's bias (4 KV heads of 8)
      EXPECT_EQ(loaded.weights.layers[3].o_proj.bias.size(), 64u);
      EXPECT_EQ(loaded.weights.layers[3].v_proj.bias.size(), 32u);
    }
    const std::vector<float> got = get(testing::forward_logits(loaded, tokens));
    const testing::MaxDiff d = testing::max_abs_diff(want, got);
    EXPECT_LE(d.value, 1e-4f * scale) << "logit " << d.index << ": " << want[d.index] << " vs " << got[d.index];
  }
}

// ---------------------------------------------------------------------------- planted outliers

// One decoder layer whose input has outlier channels with a non-zero centre, as LLM
// residual streams do (a few channels far larger than the rest, RMSNorm weights large there).
class PlantedOutliers : public ::testing::Test {
 protected:
  void SetUp() override {
    c_.n_layers = 1;
    c_.dim = 64;
    c_.n_heads = 4;
    c_.n_kv_heads = 2;
    c_.head_dim = 16;
    c_.ffn_dim = 128;
    c_.vocab_size = 16;
    c_.max_seq_len = 64;
    weights_ = std::move(testing::make_random_model(c_, 21).weights.layers[0]);
    std::mt19937 rng(7);
    std::normal_distribution<float> d(0.0f, 1.0f);
    x_.resize(static_cast<size_t>(kSeq * kLen * c_.dim));  // [kSeq, kLen, dim]
    for (int64_t t = 0; t < kSeq * kLen; ++t) {
      for (int j = 0; j < c_.dim; ++j) {
        float v = d(rng);
        if (j == 5 || j == 40) v = 6.0f + 3.0f * v;  // outlier channels centred at 6
        x_[t * c_.dim + j] = v;
      }
    }
    for (int j : {5, 40}) {
      weights_.attn_norm[j] *= 30.0f;
      weights_.ffn_norm[j] *= 30.0f;
    }
  }

  // ‖Y_q − Y‖² / ‖Y − X‖²: the quantized layer's output error relative to the layer's update.
  double layer_error(const json& recipe_json) {
    const Recipe recipe = get(parse_recipe(recipe_json, "planted"));
    ThreadPool pool(1);
    LayerRunner runner(c_, kLen);
    const std::vector<float> no_rope;
    std::vector<float> y_fp(x_.size());
    {
      DecoderBlock block = get(DecoderBlock::create(c_, 0, weights_, no_rope));
      EXPECT_TRUE(runner.run(block, x_.data(), kSeq, y_fp.data(), pool).ok());
    }
    testing::ScopedTempDir dir("planted");
    LowbitFileInfo info;
    info.config = c_;
    LowbitFileWriter writer = get(LowbitFileWriter::create(dir.file("l.lbq"), info, nullptr));
    std::vector<float> y_q = x_;
    LayerQuantizerContext ctx;
    ctx.config = &c_;
    ctx.recipe = &recipe;
    ctx.rope_freq_factors = &no_rope;
    ctx.pool = &pool;
    ctx.calibration = CalibrationState{&runner, kSeq, y_q.data()};
    ctx.writer = &writer;
    const auto reports = quantize_layer(ctx, 0, weights_);
    EXPECT_TRUE(reports.ok()) << reports.status().message();
    double err = 0.0, ref = 0.0;
    for (size_t i = 0; i < x_.size(); ++i) {
      err += (static_cast<double>(y_q[i]) - y_fp[i]) * (static_cast<double>(y_q[i]) - y_fp[i]);
      ref += (static_cast<double>(y_fp[i]) - x_[i]) * (static_cast<double>(y_fp[i]) - x_[i]);
    }
    return err / ref;
  }

  static constexpr int kSeq = 4;
  static constexpr int kLen = 32;
  ModelConfig c_;
  LayerWeights weights_;
  std::vector<float> x_;
};

TEST_F(PlantedOutliers, MigrationCutsTheW8A8PerTensorError) {
  const json w8a8 = {{"method", "rtn"}, {"format", "int8_pc"}, {"act", {{"format", "int8"}, {"granularity", "tensor"}}}};
  const double plain = layer_error({{"name", "plain"}, {"default", w8a8}});
  const double smooth = layer_error({{"name", "smooth"}, {"smooth", {{"alpha", 0.5}}}, {"default", w8a8}});
  const double smooth_search =
      layer_error({{"name", "smooth-search"}, {"smooth", {{"search", true}}}, {"default", w8a8}});
  const double osp = layer_error({{"name", "osp"}, {"osp", json::object()}, {"default", w8a8}});
  std::printf("  W8A8 per-tensor layer error: plain %.4e  smooth %.4e  smooth-search %.4e  osp %.4e\n", plain, smooth,
              smooth_search, osp);
  // Measured: plain 1.85e-3, smooth 4.1e-4 (0.22x), smooth-search 4.0e-4, osp 3.6e-4 (0.19x).
  EXPECT_GT(plain, 1e-3);
  EXPECT_LT(plain, 4e-3);
  EXPECT_LT(smooth, 0.3 * plain);
  EXPECT_GT(smooth, 0.1 * plain);
  EXPECT_LE(smooth_search, smooth * 1.05);
  EXPECT_LT(osp, smooth);  // the shift centres the outlier channels as well
  EXPECT_GT(osp, 0.1 * plain);
}

}  // namespace
}  // namespace lowbit
