// Restorative LoRA's training engine (train/decoder_backprop.h, train/lora_training.h,
// train/lora_adapters.h) on the real stories260K model: the loss against the
// runtime's forward pass, the gradient against central differences, merging, and a
// planted damage that training must repair.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/splitmix64.h"
#include "core/thread_pool.h"
#include "model/llama_model.h"
#include "model/loader.h"
#include "train/decoder_backprop.h"
#include "train/lora_training.h"
#include "test_util.h"

namespace lowbit {
namespace {

struct Stories {
  LoadedModel loaded;
  std::vector<int32_t> tokens;  // greedy_from_bos_100: BOS and 100 generated tokens
};

Stories load_stories(const std::string& gguf, const std::string& golden_path) {
  auto loaded = load_model(gguf, {});
  EXPECT_TRUE(loaded.ok()) << loaded.status().message();
  std::ifstream in(golden_path);
  const nlohmann::json golden = nlohmann::json::parse(in);
  return {std::move(loaded).value(), golden["greedy_from_bos_100"]["ids"].get<std::vector<int32_t>>()};
}

#define LB_STORIES(s)                                                                  \
  LB_REQUIRE_SHARED(gguf_path, "models/stories260K/stories260K.gguf");                 \
  LB_REQUIRE_SHARED(golden_path, "models/stories260K/golden_reference.json");          \
  Stories s = load_stories(gguf_path, golden_path);                                    \
  ASSERT_GE(s.tokens.size(), 64u)

// Every adapter value drawn from N(0, sigma²)-like uniform noise (so A and B both get gradients).
void randomise(LoraAdapters& lora, float sigma, uint64_t seed) {
  SplitMix64 rng{seed};
  for (auto& layer : lora.layers) {
    for (LoraMatrix& m : layer) {
      for (float& v : m.a) v = sigma * static_cast<float>(2.0 * rng.uniform() - 1.0);
      for (float& v : m.b) v = sigma * static_cast<float>(2.0 * rng.uniform() - 1.0);
    }
  }
}

// Σ over every parameter of f(p, d) for the parameter arrays of lora and dir side by side.
template <class F>
void for_each_pair(LoraAdapters& lora, const LoraAdapters& dir, F f) {
  for (size_t l = 0; l < lora.layers.size(); ++l) {
    for (size_t k = 0; k < 7; ++k) {
      f(lora.layers[l][k].a, dir.layers[l][k].a);
      f(lora.layers[l][k].b, dir.layers[l][k].b);
    }
  }
}

TEST(LoraBackprop, UntrainedAdaptersGiveTheRuntimeForwardLoss) {
  LB_STORIES(s);
  const ModelConfig& c = s.loaded.config;
  const int T = 64;
  const LoraAdapters lora = make_lora_adapters(c, 4, 4.0f, 1);  // B = 0: no change
  auto loss = lora_window_loss(c, s.loaded.weights, lora, s.tokens.data(), T, nullptr);
  ASSERT_TRUE(loss.ok()) << loss.status().message();

  auto model = LlamaModel::create(c, s.loaded.weights);
  ASSERT_TRUE(model.ok());
  ThreadPool pool(2);
  auto cache = model->make_fp32_cache(T);
  std::vector<float> logits(static_cast<size_t>(T) * c.vocab_size);
  ASSERT_TRUE(model->forward(s.tokens.data(), T, 0, *cache, logits.data(), pool).ok());
  double want = 0.0;
  for (int t = 0; t + 1 < T; ++t) {
    const float* row = logits.data() + static_cast<size_t>(t) * c.vocab_size;
    double mx = row[0], z = 0.0;
    for (int i = 0; i < c.vocab_size; ++i) mx = std::max(mx, static_cast<double>(row[i]));
    for (int i = 0; i < c.vocab_size; ++i) z += std::exp(row[i] - mx);
    want += std::log(z) + mx - row[s.tokens[static_cast<size_t>(t + 1)]];
  }
  want /= T - 1;
  // Both forwards are within 1e-4 of the float64 logits (ModelGolden's bound), and a
  // token's NLL moves by at most twice the largest logit change (log-sum-exp and the
  // target): 4e-4 between the two.
  EXPECT_NEAR(*loss, want, 4e-4);
  EXPECT_GT(*loss, 0.1);  // a real loss, not 0
}

TEST(LoraBackprop, GradientMatchesCentralDifferences) {
  LB_STORIES(s);
  const ModelConfig& c = s.loaded.config;
  const int T = 24;
  LoraAdapters lora = make_lora_adapters(c, 3, 6.0f, 2);
  randomise(lora, 0.05f, 3);
  LoraAdapters grad = zero_lora_like(lora);
  auto loss = lora_window_loss(c, s.loaded.weights, lora, s.tokens.data(), T, &grad);
  ASSERT_TRUE(loss.ok()) << loss.status().message();
  // Directional derivatives along random directions, one per matrix kind, and one
  // through every parameter at once.
  for (int trial = 0; trial < 8; ++trial) {
    LoraAdapters dir = zero_lora_like(lora);
    SplitMix64 rng{100u + static_cast<uint64_t>(trial)};
    for (size_t l = 0; l < dir.layers.size(); ++l) {
      for (size_t k = 0; k < 7; ++k) {
        if (trial < 7 && k != static_cast<size_t>(trial)) continue;
        for (float& v : dir.layers[l][k].a) v = static_cast<float>(2.0 * rng.uniform() - 1.0);
        for (float& v : dir.layers[l][k].b) v = static_cast<float>(2.0 * rng.uniform() - 1.0);
      }
    }
    double analytic = 0.0;
    for_each_pair(grad, dir, [&](std::vector<float>& g, const std::vector<float>& d) {
      for (size_t i = 0; i < g.size(); ++i) analytic += static_cast<double>(g[i]) * d[i];
    });
    const double eps = 3e-3;
    const auto shifted = [&](double sign) {
      LoraAdapters p = lora;
      for_each_pair(p, dir, [&](std::vector<float>& v, const std::vector<float>& d) {
        for (size_t i = 0; i < v.size(); ++i) v[i] += static_cast<float>(sign * eps * d[i]);
      });
      return lora_window_loss(c, s.loaded.weights, p, s.tokens.data(), T, nullptr).value();
    };
    const double numeric = (shifted(1.0) - shifted(-1.0)) / (2.0 * eps);
    // Error of the central difference: the truncation term eps² f''' / 6 (measured on
    // these directions: it shrinks 10x from eps 1e-2 to 3e-3, to about 1e-4 of the
    // slope) plus the FP32 rounding of each loss, about 3e-7 for a loss near 0.4 after
    // the layers' sums, amplified by 1 / (2 eps): 1e-4. 2e-4 absolute plus 1 % of the
    // slope covers both; a wrong factor or a missing term is off by far more.
    EXPECT_NEAR(numeric, analytic, 2e-4 + 0.01 * std::abs(analytic)) << "trial " << trial;
    EXPECT_GT(std::abs(analytic), 5e-4) << "trial " << trial << ": a direction with no slope tests nothing";
  }
}

TEST(LoraBackprop, MergedWeightsGiveTheAdaptedLoss) {
  LB_STORIES(s);
  const ModelConfig& c = s.loaded.config;
  const int T = 48;
  LoraAdapters lora = make_lora_adapters(c, 4, 8.0f, 5);
  randomise(lora, 0.05f, 6);
  const double adapted = lora_window_loss(c, s.loaded.weights, lora, s.tokens.data(), T, nullptr).value();
  ModelWeights merged = s.loaded.weights;
  for (int l = 0; l < c.n_layers; ++l) merge_lora_layer(lora, l, merged.layers[static_cast<size_t>(l)]);
  const LoraAdapters none = make_lora_adapters(c, 4, 8.0f, 5);  // B = 0
  const double plain = lora_window_loss(c, merged, none, s.tokens.data(), T, nullptr).value();
  const double base = lora_window_loss(c, s.loaded.weights, none, s.tokens.data(), T, nullptr).value();
  // W + s B A in one matrix against x Wᵀ + s (x Aᵀ) Bᵀ: the same function up to FP32
  // rounding of the products (relative 1e-6 per layer): far below the 1e-4 allowed,
  // while the adapters themselves move the loss by much more.
  EXPECT_NEAR(plain, adapted, 1e-4);
  EXPECT_GT(std::abs(adapted - base), 1e-2);
}

TEST(LoraBackprop, TrainingRepairsAPlantedLowRankDamage) {
  LB_STORIES(s);
  const ModelConfig& c = s.loaded.config;
  const int T = 64;
  const std::vector<int32_t> windows(s.tokens.begin(), s.tokens.begin() + T);
  const LoraAdapters none = make_lora_adapters(c, 2, 2.0f, 0);
  const double clean = lora_window_loss(c, s.loaded.weights, none, windows.data(), T, nullptr).value();
  // Damage: -Δ on layer 2's up_proj and o_proj, Δ of rank 1, so adapters of rank 2 can undo it exactly.
  ModelWeights damaged = s.loaded.weights;
  SplitMix64 rng{9};
  for (Matrix* w : {&damaged.layers[2].up_proj, &damaged.layers[2].o_proj}) {
    std::vector<float> u(static_cast<size_t>(w->rows)), v(static_cast<size_t>(w->cols));
    for (float& x : u) x = static_cast<float>(2.0 * rng.uniform() - 1.0);
    for (float& x : v) x = static_cast<float>(2.0 * rng.uniform() - 1.0);
    for (int64_t r = 0; r < w->rows; ++r) {
      for (int64_t k = 0; k < w->cols; ++k) w->data[static_cast<size_t>(r * w->cols + k)] -= 0.5f * u[r] * v[k];
    }
  }
  const double hurt = lora_window_loss(c, damaged, none, windows.data(), T, nullptr).value();
  ASSERT_GT(hurt - clean, 0.5) << "the damage must matter";
  LoraTrainOptions o;
  o.rank = 2;
  o.alpha = 2.0f;
  o.steps = 150;
  o.lr = 1e-2f;
  LoraTrainReport report;
  auto lora = train_lora(c, damaged, windows, T, o, &report);
  ASSERT_TRUE(lora.ok()) << lora.status().message();
  ASSERT_EQ(report.step_loss.size(), 150u);
  const double repaired = lora_window_loss(c, damaged, *lora, windows.data(), T, nullptr).value();
  // Most of the damage undone: the adapters could undo it all (and may overfit the
  // one window below the clean loss).
  EXPECT_LT(repaired - clean, 0.1 * (hurt - clean)) << "clean " << clean << " hurt " << hurt << " repaired " << repaired;
}

TEST(LoraBackprop, BadWindowsAndOptionsAreRefused) {
  LB_STORIES(s);
  const ModelConfig& c = s.loaded.config;
  const LoraAdapters lora = make_lora_adapters(c, 2, 2.0f, 0);
  std::vector<int32_t> bad(s.tokens.begin(), s.tokens.begin() + 8);
  bad[3] = c.vocab_size;
  auto r = lora_window_loss(c, s.loaded.weights, lora, bad.data(), 8, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("position 3"), std::string::npos) << r.status().message();
  EXPECT_FALSE(lora_window_loss(c, s.loaded.weights, lora, s.tokens.data(), 1, nullptr).ok());
  LoraTrainOptions o;
  o.rank = 0;
  EXPECT_FALSE(train_lora(c, s.loaded.weights, s.tokens, 8, o, nullptr).ok());
  o.rank = 2;
  o.lr = -1.0f;
  EXPECT_FALSE(train_lora(c, s.loaded.weights, s.tokens, 8, o, nullptr).ok());
  o.lr = 1e-3f;
  EXPECT_FALSE(train_lora(c, s.loaded.weights, std::vector<int32_t>(s.tokens.begin(), s.tokens.begin() + 9), 8, o,
                          nullptr).ok());  // not whole windows
}

}  // namespace
}  // namespace lowbit
