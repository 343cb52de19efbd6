// QuaRot-style rotation of a whole model: the rotated FP32 model (with the
// online Hadamard transform on down_proj's input) computes the same logits as
// the original, on random models with non-power-of-two shapes, sizes that fall
// back to a random orthogonal matrix, and stories260K.
#include <gtest/gtest.h>

#include <cmath>

#include "model/llama_model.h"
#include "model/loader.h"
#include "model/online_hadamard_linear.h"
#include "model/rotation_spec.h"
#include "model_writers.h"
#include "pipeline/rotation.h"
#include "test_quantize_util.h"
#include "test_util.h"

namespace lowbit {
namespace {

using testing::get;

// Logits [n_tokens, vocab] of config + weights, with down_proj wrapped as `spec` says
// (online == false: no wrapper even when the spec asks for one).
std::vector<float> logits_of(const ModelConfig& config, const ModelWeights& weights, const RotationSpec* spec,
                             const std::vector<int32_t>& tokens, int threads = 1) {
  LlamaModel model = get(LlamaModel::create(config, weights));
  if (spec != nullptr) {
    const Status s = attach_online_rotations(model, *spec);
    EXPECT_TRUE(s.ok()) << s.message();
  }
  std::unique_ptr<KvCache> cache = model.make_fp32_cache(static_cast<int>(tokens.size()));
  ThreadPool pool(threads);
  std::vector<float> logits(tokens.size() * static_cast<size_t>(config.vocab_size));
  const Status s = model.forward(tokens.data(), static_cast<int>(tokens.size()), 0, *cache, logits.data(), pool);
  EXPECT_TRUE(s.ok()) << s.message();
  return logits;
}

float max_abs(const std::vector<float>& v) {
  float m = 0.0f;
  for (float x : v) m = std::max(m, std::fabs(x));
  return m;
}

// Rotates a copy of `m` by `spec` and checks the logits: max |Δ| ≤ 1e-4 · max |logit|.
// Returns that relative error.
double check_rotation_keeps_logits(const LoadedModel& m, const RotationSpec& spec, const std::vector<int32_t>& tokens) {
  const std::vector<float> want = logits_of(m.config, m.weights, nullptr, tokens);
  ModelConfig config = m.config;
  ModelWeights weights = m.weights;
  const Status s = rotate_model(weights, config, spec);
  EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_FALSE(config.tied_embeddings);
  EXPECT_EQ(weights.lm_head.rows, m.config.vocab_size);
  for (float g : weights.output_norm) EXPECT_EQ(g, 1.0f);
  for (float g : weights.layers[0].attn_norm) EXPECT_EQ(g, 1.0f);
  // The rotation really moved the weights: the embedding is no longer the original.
  EXPECT_GT(testing::max_abs_diff(weights.token_embedding, m.weights.token_embedding).value, 0.1f);
  const std::vector<float> got = logits_of(config, weights, &spec, tokens, 2);
  const testing::MaxDiff d = testing::max_abs_diff(want, got);
  const double rel = d.value / max_abs(want);
  EXPECT_LE(rel, 1e-4) << "logit " << d.index << ": " << want[d.index] << " vs " << got[d.index];
  if (spec.online_down) {
    // Without the online transform the folded W_down·H is wrong: the wrapper matters.
    const std::vector<float> unwrapped = logits_of(config, weights, nullptr, tokens);
    EXPECT_GT(testing::max_abs_diff(want, unwrapped).value / max_abs(want), 1e-2);
  }
  return rel;
}

ModelConfig small_config(int dim, int n_heads, int n_kv_heads, int head_dim, int ffn, bool bias, bool tied) {
  ModelConfig c;
  c.n_layers = 2;
  c.dim = dim;
  c.n_heads = n_heads;
  c.n_kv_heads = n_kv_heads;
  c.head_dim = head_dim;
  c.ffn_dim = ffn;
  c.vocab_size = 64;
  c.qkv_bias = bias;
  c.tied_embeddings = tied;
  c.max_seq_len = 64;
  return c;
}

const std::vector<int32_t> kTokens = {1, 5, 9, 33, 17, 2, 40, 12, 7, 3, 60, 0};

TEST(RotateModel, KeepsLogitsOnRandomModels) {
  struct Case {
    const char* what;
    ModelConfig config;
  };
  const Case cases[] = {
      {"dim 48 = 4·12, ffn 80 = 4·20, head_dim 12, GQA, biases, tied",
       small_config(48, 4, 2, 12, 80, true, true)},
      {"dim 96 = 8·12, ffn 80, head_dim 12, untied", small_config(96, 8, 4, 12, 80, false, false)},
      {"dim 64, ffn 172 (fallback), head_dim 16", small_config(64, 4, 4, 16, 172, false, true)},
      {"dim 30 (fallback), ffn 36, head_dim 10 (fallback)", small_config(30, 3, 1, 10, 36, true, false)},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const LoadedModel m = testing::make_random_model(c.config, 5);
    for (bool online : {true, false}) {
      for (bool v_heads : {false, true}) {
        SCOPED_TRACE(::testing::Message() << "online_down " << online << " rotate_v_heads " << v_heads);
        check_rotation_keeps_logits(m, RotationSpec{.seed = 3, .online_down = online, .rotate_v_heads = v_heads},
                                    kTokens);
      }
    }
  }
}

TEST(RotateModel, FoldsNormShiftsIntoBiases) {
  // Outlier Suppression+ shifts after the norms (n = rms_norm(x)·g + b) become biases
  // of the linears that read them, then the rotation proceeds as usual.
  LoadedModel m = testing::make_random_model(small_config(48, 4, 2, 12, 80, false, false), 8);
  for (LayerWeights& l : m.weights.layers) {
    for (int j = 0; j < m.config.dim; ++j) {
      l.attn_norm_bias.push_back(0.3f * std::sin(static_cast<float>(j)));
      l.ffn_norm_bias.push_back(0.2f * std::cos(static_cast<float>(j)));
    }
  }
  check_rotation_keeps_logits(m, RotationSpec{}, kTokens);
  ModelConfig c = m.config;
  ModelWeights w = m.weights;
  ASSERT_TRUE(rotate_model(w, c, RotationSpec{}).ok());
  EXPECT_TRUE(w.layers[0].attn_norm_bias.empty());
  EXPECT_EQ(w.layers[0].gate_proj.bias.size(), static_cast<size_t>(c.ffn_dim));
}

TEST(RotateModel, KeepsLogitsOnStories260K) {
  LB_REQUIRE_SHARED(path, "models/stories260K/stories260K.gguf");
  const LoadedModel m = get(load_model(path, {}));
  // dim 64 (Hadamard), ffn 172 = 4·43 (random orthogonal fallback), head_dim 8.
  const ModelRotations r = ModelRotations::create(m.config, RotationSpec{});
  EXPECT_EQ(r.residual.kind(), Rotation::Kind::kHadamard);
  ASSERT_TRUE(r.down.has_value());
  EXPECT_EQ(r.down->kind(), Rotation::Kind::kRandomOrthogonal);
  ASSERT_EQ(r.notes().size(), 1u);
  EXPECT_NE(r.notes()[0].find("down_proj input: no Hadamard matrix of order 172"), std::string::npos);
  const RotationSpec spec{.seed = 0, .online_down = true, .rotate_v_heads = true};
  const double rel = check_rotation_keeps_logits(m, spec, {1, 403, 407, 261, 378, 429, 365, 274, 13, 1, 300, 22, 89});
  RecordProperty("max_rel_logit_error", std::to_string(rel));
}

TEST(RotateModel, SpreadsAnOutlierChannel) {
  // One planted outlier channel in the embedding: after rotation the largest |x| of a row
  // over its RMS drops from ~sqrt(dim) toward a Gaussian's few units.
  ModelConfig c = small_config(48, 4, 2, 12, 80, false, false);
  LoadedModel m = testing::make_random_model(c, 9);
  for (int v = 0; v < c.vocab_size; ++v) m.weights.token_embedding[static_cast<size_t>(v * c.dim + 7)] = 50.0f;
  ModelConfig rc = c;
  ModelWeights w = m.weights;
  ASSERT_TRUE(rotate_model(w, rc, RotationSpec{}).ok());
  auto peak_over_rms = [&](const std::vector<float>& e) {
    double worst = 0.0;
    for (int v = 0; v < c.vocab_size; ++v) {
      double sum2 = 0.0, peak = 0.0;
      for (int j = 0; j < c.dim; ++j) {
        const double x = e[static_cast<size_t>(v * c.dim + j)];
        sum2 += x * x;
        peak = std::max(peak, std::abs(x));
      }
      worst = std::max(worst, peak / std::sqrt(sum2 / c.dim));
    }
    return worst;
  };
  EXPECT_GT(peak_over_rms(m.weights.token_embedding), 6.5);  // ≈ sqrt(48) = 6.9
  EXPECT_LT(peak_over_rms(w.token_embedding), 2.0);
}

TEST(RotationSpec, JsonRoundTripAndErrors) {
  const RotationSpec s{.seed = 12, .online_down = false, .rotate_v_heads = true};
  const RotationSpec back = get(rotation_spec_from_json(rotation_spec_to_json(s), "t"));
  EXPECT_EQ(back.seed, 12u);
  EXPECT_FALSE(back.online_down);
  EXPECT_TRUE(back.rotate_v_heads);
  const RotationSpec defaults = get(rotation_spec_from_json(nlohmann::json::object(), "t"));
  EXPECT_EQ(defaults.seed, 0u);
  EXPECT_TRUE(defaults.online_down);
  EXPECT_FALSE(defaults.rotate_v_heads);
  EXPECT_TRUE(rotation_spec_from_json({{"seed", 1}, {"transforms", {{"residual", "x"}}}}, "t").ok());
  const auto bad_key = rotation_spec_from_json({{"sead", 1}}, "recipe r");
  ASSERT_FALSE(bad_key.ok());
  EXPECT_NE(bad_key.status().message().find("recipe r: unknown rotation key 'sead'"), std::string::npos);
  EXPECT_FALSE(rotation_spec_from_json({{"seed", -1}}, "t").ok());
  EXPECT_FALSE(rotation_spec_from_json({{"online_down", 1}}, "t").ok());
  EXPECT_FALSE(rotation_spec_from_json(nlohmann::json::array(), "t").ok());
}

TEST(OnlineHadamardLinear, EqualsInnerOfRotatedInput) {
  // y = inner(x·H) for a dense inner layer, batched on 2 threads and one token at a time.
  const int64_t in = 80, out = 5, n = 7;
  Matrix w;
  w.rows = out;
  w.cols = in;
  for (int64_t i = 0; i < out * in; ++i) w.data.push_back(std::sin(0.37f * static_cast<float>(i)));
  std::vector<float> x;
  for (int64_t i = 0; i < n * in; ++i) x.push_back(std::cos(0.11f * static_cast<float>(i)));
  const Rotation h = Rotation::create(in, 0, false);
  const OnlineHadamardLinear layer(std::make_unique<DenseLinear>(w), h);
  EXPECT_EQ(layer.describe(), "hadamard 80 = 4·20 · f32");
  std::vector<float> xh = x;
  h.apply(xh.data(), n);
  std::vector<float> want(static_cast<size_t>(n * out)), got(want.size()), one(want.size());
  ThreadPool pool(2), single(1);
  DenseLinear(w).forward(xh.data(), n, want.data(), single);
  layer.forward(x.data(), n, got.data(), pool);
  for (int64_t t = 0; t < n; ++t) layer.forward(x.data() + t * in, 1, one.data() + t * out, single);
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_NEAR(got[i], want[i], 1e-5) << i;
    EXPECT_NEAR(one[i], want[i], 1e-5) << i;
  }
}

}  // namespace
}  // namespace lowbit
