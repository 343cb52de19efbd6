// ActivationStats: H = XᵀX of inputs fed in awkward chunks against a direct
// double-precision sum, within c·Σ|x_j||x_k|·eps (c = tokens summed, the bound of
// a length-n dot product); mean|x| and max|x| exact; q/k/v and gate/up counted
// once; a stories260K forward seen in full, with the first layer's input checked
// against the embedding rows normalised independently.
#include <cmath>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "model/llama_model.h"
#include "model/loader.h"
#include "model/model_source.h"
#include "model/ops.h"
#include "pipeline/activation_capture.h"
#include "pipeline/activation_stats.h"
#include "pipeline/layer_runner.h"
#include "test_util.h"

namespace lowbit {
namespace {

// Gaussian rows [n, in] with a 50x outlier channel 3 and an all-zero channel 5.
std::vector<float> random_inputs(int64_t n, int64_t in, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n * in));
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t j = 0; j < in; ++j) {
      float v = normal(rng);
      if (j == 3) v *= 50.0f;
      if (j == 5) v = 0.0f;
      x[t * in + j] = v;
    }
  }
  return x;
}

// Checks H against Σ_t x_t x_tᵀ in double, entry by entry, within n·eps·Σ_t|x_tj||x_tk|.
void expect_hessian(const InputStats& s, const std::vector<float>& x, int64_t n, double eps) {
  const int64_t in = s.in_features;
  const std::vector<double> h = s.hessian();
  ASSERT_EQ(h.size(), static_cast<size_t>(in * in));
  for (int64_t j = 0; j < in; ++j) {
    for (int64_t k = 0; k < in; ++k) {
      double exact = 0.0, magnitude = 0.0;
      for (int64_t t = 0; t < n; ++t) {
        const double a = x[t * in + j], b = x[t * in + k];
        exact += a * b;
        magnitude += std::fabs(a * b);
      }
      const double tol = static_cast<double>(n) * eps * magnitude;
      const double err = std::fabs(h[j * in + k] - exact);
      if (err > tol) {
        ADD_FAILURE() << "H[" << j << ", " << k << "] = " << h[j * in + k] << ", exact " << exact << ", error " << err
                      << " > " << tol;
        return;
      }
    }
  }
  EXPECT_EQ(h[3 * in + 5], 0.0);  // the zero channel stays exactly zero
  EXPECT_EQ(h[1 * in + 2], h[2 * in + 1]);
}

TEST(ActivationStats, ChunkedInputsMatchDirectSums) {
  const int64_t in = 33;
  const std::vector<int64_t> chunks = {1, 7, 31, 300, 64, 2};  // 300 > the 256-token double buffer
  int64_t n = 0;
  for (int64_t c : chunks) n += c;
  const std::vector<float> x = random_inputs(n, in, 42);
  for (HessianPrecision precision : {HessianPrecision::kFp32, HessianPrecision::kFp64}) {
    ActivationStats stats({.hessian = precision, .names = {}});
    int64_t t0 = 0;
    for (int64_t c : chunks) {
      stats.observe("layers.2.o_proj", x.data() + t0 * in, c, in);
      t0 += c;
    }
    ASSERT_TRUE(stats.status().ok()) << stats.status().message();
    const InputStats* s = stats.find("layers.2.o_proj");
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->key, "layers.2.o_proj");
    EXPECT_EQ(s->n_tokens, n);
    const double eps = precision == HessianPrecision::kFp32 ? std::numeric_limits<float>::epsilon()
                                                            : std::numeric_limits<double>::epsilon();
    expect_hessian(*s, x, n, eps);

    // Channel statistics: the same token-order double sums, so exactly equal.
    const std::vector<double> mean = s->mean_abs();
    for (int64_t j = 0; j < in; ++j) {
      double sum = 0.0;
      float max = 0.0f;
      for (int64_t t = 0; t < n; ++t) {
        sum += std::fabs(x[t * in + j]);
        max = std::max(max, std::fabs(x[t * in + j]));
      }
      EXPECT_EQ(mean[j], sum / static_cast<double>(n)) << "channel " << j;
      EXPECT_EQ(s->abs_max[j], max) << "channel " << j;
    }
    EXPECT_EQ(mean[5], 0.0);
    EXPECT_GT(mean[3], 10.0 * mean[4]);
  }
}

TEST(ActivationStats, WithoutChannelStatsTheHessianIsTheSame) {
  const int64_t in = 21, n = 40;
  const std::vector<float> x = random_inputs(n, in, 5);
  ActivationStats full({.hessian = HessianPrecision::kFp64, .names = {}});
  ActivationStats h_only({.hessian = HessianPrecision::kFp64, .names = {}, .channel_stats = false});
  for (ActivationStats* s : {&full, &h_only}) s->observe("layers.1.down_proj", x.data(), n, in);
  const InputStats* a = full.find("layers.1.down_proj");
  const InputStats* b = h_only.find("layers.1.down_proj");
  ASSERT_TRUE(a != nullptr && b != nullptr);
  EXPECT_EQ(a->hessian(), b->hessian());
  EXPECT_EQ(b->n_tokens, n);
  EXPECT_GT(a->abs_max[3], 0.0f);
  EXPECT_EQ(b->abs_max, std::vector<float>(in, 0.0f));
  EXPECT_EQ(b->abs_sum, std::vector<double>(in, 0.0));
}

TEST(ActivationStats, SharedInputsAreAccumulatedOnce) {
  const int64_t in = 8, n = 5;
  const std::vector<float> x = random_inputs(n, in, 7);
  ActivationStats stats;
  for (const char* name : {"q_proj", "k_proj", "v_proj", "gate_proj", "up_proj"}) {
    stats.observe(std::string("layers.4.") + name, x.data(), n, in);
  }
  EXPECT_EQ(stats.inputs().size(), 2u);
  const InputStats* q = stats.find("layers.4.q_proj");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(stats.find("layers.4.k_proj"), q);
  EXPECT_EQ(stats.find("layers.4.v_proj"), q);
  EXPECT_EQ(stats.find("layers.4.up_proj"), stats.find("layers.4.gate_proj"));
  EXPECT_EQ(q->n_tokens, n);  // not 3n
  expect_hessian(*q, x, n, std::numeric_limits<double>::epsilon());
  for (const auto& [name, seen] : stats.seen()) {
    EXPECT_EQ(seen.n_tokens, n) << name;
    EXPECT_EQ(seen.in_features, in) << name;
  }
  EXPECT_EQ(shared_input_key("layers.12.v_proj"), "layers.12.q_proj");
  EXPECT_EQ(shared_input_key("layers.12.up_proj"), "layers.12.gate_proj");
  EXPECT_EQ(shared_input_key("layers.12.down_proj"), "layers.12.down_proj");
  EXPECT_EQ(shared_input_key("lm_head"), "lm_head");
}

// take_hessian moves out the same symmetric H that hessian() copies, in both
// precisions, and forgets that input.
TEST(ActivationStats, TakenHessianEqualsTheCopy) {
  const int64_t in = 9, n = 40;
  const std::vector<float> x = random_inputs(n, in, 11);
  for (HessianPrecision p : {HessianPrecision::kFp64, HessianPrecision::kFp32}) {
    ActivationStats stats({.hessian = p, .names = {}});
    stats.observe("layers.0.gate_proj", x.data(), n, in);
    const std::vector<double> copy = stats.find("layers.0.up_proj")->hessian();
    const std::vector<double> taken = stats.take_hessian("layers.0.up_proj");
    ASSERT_EQ(copy.size(), static_cast<size_t>(in * in));
    EXPECT_EQ(taken, copy);  // bit for bit
    EXPECT_EQ(stats.find("layers.0.gate_proj"), nullptr);
    EXPECT_TRUE(stats.take_hessian("layers.0.gate_proj").empty());
  }
}

TEST(ActivationStats, SubsetBoundsWhatIsKept) {
  const int64_t in = 6, n = 4;
  const std::vector<float> x = random_inputs(n, in, 3);
  ActivationStats stats({.hessian = HessianPrecision::kNone, .names = {"layers.1.v_proj", "layers.0.down_proj"}});
  for (int layer = 0; layer < 2; ++layer) {
    for (const char* name : {"q_proj", "k_proj", "v_proj", "o_proj", "down_proj"}) {
      stats.observe("layers." + std::to_string(layer) + "." + name, x.data(), n, in);
    }
  }
  std::set<std::string> keys;
  for (const auto& [key, s] : stats.inputs()) keys.insert(key);
  EXPECT_EQ(keys, (std::set<std::string>{"layers.0.down_proj", "layers.1.q_proj"}));
  EXPECT_NE(stats.find("layers.1.k_proj"), nullptr);
  EXPECT_EQ(stats.find("layers.0.q_proj"), nullptr);
  EXPECT_EQ(stats.seen().size(), 10u);  // every name is still seen
  const InputStats* s = stats.find("layers.0.down_proj");
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->hessian().empty());
  EXPECT_TRUE(s->h_f32.empty() && s->h_f64.empty());
  EXPECT_EQ(s->abs_max.size(), static_cast<size_t>(in));
  stats.erase("layers.1.v_proj");
  EXPECT_EQ(stats.find("layers.1.q_proj"), nullptr);
}

TEST(ActivationStats, InconsistentWidthIsReported) {
  const std::vector<float> x(64, 1.0f);
  ActivationStats stats;
  stats.observe("layers.0.o_proj", x.data(), 2, 8);
  stats.observe("layers.0.o_proj", x.data(), 2, 16);
  ASSERT_FALSE(stats.status().ok());
  EXPECT_NE(stats.status().message().find("'layers.0.o_proj'"), std::string::npos) << stats.status().message();
  EXPECT_EQ(stats.find("layers.0.o_proj")->n_tokens, 2);
}

TEST(ActivationStats, Stories260KForwardSeesEveryLinear) {
  LB_REQUIRE_SHARED(path, "models/stories260K/stories260K.gguf");
  Expected<LoadedModel> loaded = load_gguf_model(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  Expected<LlamaModel> model = LlamaModel::create(loaded->config, loaded->weights);
  ASSERT_TRUE(model.ok()) << model.status().message();
  const ModelConfig& c = model->config();
  ThreadPool pool(2);

  // Two sequences of 9 and 14 tokens, every position's logits.
  const std::vector<int32_t> a = {1, 403, 407, 261, 378, 9, 260, 21, 44};
  std::vector<int32_t> b(14, 1);
  for (int t = 1; t < 14; ++t) b[t] = (t * 53 + 7) % c.vocab_size;
  const std::vector<const std::vector<int32_t>*> sequences = {&a, &b};
  ActivationStats stats({.hessian = HessianPrecision::kFp64, .names = {}});
  for (const std::vector<int32_t>* seq : sequences) {
    std::unique_ptr<KvCache> cache = model->make_fp32_cache(static_cast<int>(seq->size()));
    std::vector<float> logits(seq->size() * c.vocab_size);
    ASSERT_TRUE(
        model->forward(seq->data(), static_cast<int>(seq->size()), 0, *cache, logits.data(), pool, {.observer = &stats})
            .ok());
  }
  ASSERT_TRUE(stats.status().ok()) << stats.status().message();
  const int64_t n = static_cast<int64_t>(a.size() + b.size());
  const std::vector<std::string> names = model->linear_names();
  EXPECT_EQ(stats.seen().size(), names.size());
  for (const std::string& name : names) {
    auto it = stats.seen().find(name);
    ASSERT_NE(it, stats.seen().end()) << name;
    const int64_t want_in = name.ends_with("o_proj") ? c.q_dim() : name.ends_with("down_proj") ? c.ffn_dim : c.dim;
    EXPECT_EQ(it->second.in_features, want_in) << name;
    EXPECT_EQ(it->second.n_tokens, n) << name;
    ASSERT_NE(stats.find(name), nullptr) << name;
    EXPECT_EQ(stats.find(name)->n_tokens, n) << name;
  }
  // 4 inputs per layer (q/k/v share one, gate/up another, o, down) + lm_head.
  EXPECT_EQ(stats.inputs().size(), 4u * c.n_layers + 1);

  // Known answer: layer 0's q_proj reads rms_norm(embedding row) ⊙ attn_norm.
  const LayerWeights& l0 = loaded->weights.layers[0];
  std::vector<double> sum(static_cast<size_t>(c.dim), 0.0);
  std::vector<float> row(static_cast<size_t>(c.dim));
  for (const std::vector<int32_t>* seq : sequences) {
    for (int32_t tok : *seq) {
      rms_norm(loaded->weights.token_embedding.data() + static_cast<int64_t>(tok) * c.dim, l0.attn_norm.data(), c.dim,
               c.norm_eps, row.data());
      for (int j = 0; j < c.dim; ++j) sum[j] += std::fabs(row[j]);
    }
  }
  const std::vector<double> mean = stats.find("layers.0.k_proj")->mean_abs();
  for (int j = 0; j < c.dim; ++j) EXPECT_EQ(mean[j], sum[j] / static_cast<double>(n)) << "channel " << j;

  // The layer-by-layer runner feeds observers the same inputs as the model.
  Expected<std::unique_ptr<ModelSource>> source = open_model_source(path, {});
  ASSERT_TRUE(source.ok());
  Expected<std::vector<float>> x = embed_tokens(loaded->weights.token_embedding, c, a.data(), 9);
  ASSERT_TRUE(x.ok());
  ActivationStats runner_stats({.hessian = HessianPrecision::kFp64, .names = {"layers.1.down_proj"}});
  ActivationStats model_stats({.hessian = HessianPrecision::kFp64, .names = {"layers.1.down_proj"}});
  LayerRunner runner(c, 9);
  for (int i = 0; i < 2; ++i) {
    Expected<DecoderBlock> block = DecoderBlock::create(c, i, std::move((*source)->layer(i)).value(), {});
    ASSERT_TRUE(block.ok()) << block.status().message();
    ASSERT_TRUE(runner.run(*block, x->data(), 1, x->data(), pool, &runner_stats).ok());
  }
  std::unique_ptr<KvCache> cache = model->make_fp32_cache(9);
  std::vector<float> logits(9 * c.vocab_size);
  ASSERT_TRUE(model->forward(a.data(), 9, 0, *cache, logits.data(), pool, {.observer = &model_stats}).ok());
  // A statistics-only pass (InputsOnlyObserver: the block stops once down_proj's input is
  // observed) sees the same inputs, bit for bit, as the full pass.
  {
    Expected<std::vector<float>> x0 = embed_tokens(loaded->weights.token_embedding, c, a.data(), 9);
    ASSERT_TRUE(x0.ok());
    Expected<DecoderBlock> block = DecoderBlock::create(c, 0, std::move((*source)->layer(0)).value(), {});
    ASSERT_TRUE(block.ok()) << block.status().message();
    ActivationStats full({.hessian = HessianPrecision::kFp64, .names = {}});
    ActivationStats inputs({.hessian = HessianPrecision::kFp64, .names = {}});
    InputsOnlyObserver inputs_only(inputs);
    std::vector<float> out(x0->size());
    ASSERT_TRUE(runner.run(*block, x0->data(), 1, out.data(), pool, &full).ok());
    ASSERT_TRUE(runner.run(*block, x0->data(), 1, out.data(), pool, &inputs_only).ok());
    ASSERT_EQ(inputs.inputs().size(), 4u);
    for (const auto& [key, s] : full.inputs()) {
      const InputStats* t = inputs.find(key);
      ASSERT_NE(t, nullptr) << key;
      EXPECT_EQ(t->n_tokens, s.n_tokens) << key;
      EXPECT_EQ(t->h_f64, s.h_f64) << key;
      EXPECT_EQ(t->abs_max, s.abs_max) << key;
    }
  }
  const std::vector<double> hr = runner_stats.find("layers.1.down_proj")->hessian();
  const std::vector<double> hm = model_stats.find("layers.1.down_proj")->hessian();
  ASSERT_EQ(hr.size(), static_cast<size_t>(c.ffn_dim) * c.ffn_dim);
  ASSERT_EQ(hr.size(), hm.size());
  for (size_t i = 0; i < hr.size(); ++i) ASSERT_NEAR(hr[i], hm[i], 1e-5 * (1.0 + std::fabs(hm[i]))) << i;
}

}  // namespace
}  // namespace lowbit
