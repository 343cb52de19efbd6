// LayerRunner: stories260K run layer by layer (embedding -> DecoderBlock 0..N-1
// built from a streaming ModelSource -> final norm -> head) gives the logits of
// LlamaModel::forward; the linear replacement seam still works per block and by
// model-wide name.
#include <cmath>
#include <memory>
#include <vector>

#include <gtest/gtest.h>

#include "model/decoder_block.h"
#include "model/llama_model.h"
#include "model/loader.h"
#include "model/model_source.h"
#include "model/ops.h"
#include "model_writers.h"
#include "pipeline/layer_runner.h"
#include "test_util.h"

namespace lowbit {
namespace {

constexpr int kSeqLen = 24;
constexpr int kSequences = 3;

// Deterministic token ids, BOS first in every sequence: [kSequences, kSeqLen].
std::vector<int32_t> test_tokens(int vocab) {
  std::vector<int32_t> tokens;
  for (int s = 0; s < kSequences; ++s) {
    tokens.push_back(1);
    for (int t = 1; t < kSeqLen; ++t) tokens.push_back((s * 131 + t * 37 + 11) % vocab);
  }
  return tokens;
}

// Logits of each sequence run on its own from position 0: [kSequences, kSeqLen, vocab].
std::vector<float> model_logits(const LlamaModel& model, const std::vector<int32_t>& tokens, ThreadPool& pool) {
  const int vocab = model.config().vocab_size;
  std::vector<float> logits(tokens.size() * vocab);
  for (int s = 0; s < kSequences; ++s) {
    std::unique_ptr<KvCache> cache = model.make_fp32_cache(kSeqLen);
    Status st = model.forward(tokens.data() + s * kSeqLen, kSeqLen, 0, *cache,
                              logits.data() + static_cast<size_t>(s) * kSeqLen * vocab, pool);
    EXPECT_TRUE(st.ok()) << st.message();
  }
  return logits;
}

TEST(LayerRunner, Stories260KLayerByLayerEqualsModelForward) {
  LB_REQUIRE_SHARED(path, "models/stories260K/stories260K.gguf");
  ThreadPool pool(2);
  Expected<LoadedModel> loaded = load_gguf_model(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  Expected<LlamaModel> model = LlamaModel::create(loaded->config, loaded->weights);
  ASSERT_TRUE(model.ok()) << model.status().message();
  const ModelConfig& c = model->config();
  const std::vector<int32_t> tokens = test_tokens(c.vocab_size);
  const std::vector<float> want = model_logits(*model, tokens, pool);

  // The pipeline's way: one block in FP32 at a time, hidden states carried over.
  Expected<std::unique_ptr<ModelSource>> source = open_model_source(path, {});
  ASSERT_TRUE(source.ok()) << source.status().message();
  const ModelSource& src = **source;
  Expected<std::vector<float>> table = src.token_embedding();
  ASSERT_TRUE(table.ok());
  Expected<std::vector<float>> hidden = embed_tokens(*table, c, tokens.data(), static_cast<int64_t>(tokens.size()));
  ASSERT_TRUE(hidden.ok()) << hidden.status().message();
  std::vector<float>& x = *hidden;  // [kSequences, kSeqLen, dim]
  Expected<std::vector<float>> freqs = src.rope_freq_factors();
  ASSERT_TRUE(freqs.ok());
  LayerRunner runner(c, kSeqLen);
  for (int i = 0; i < c.n_layers; ++i) {
    Expected<LayerWeights> weights = src.layer(i);
    ASSERT_TRUE(weights.ok()) << weights.status().message();
    Expected<DecoderBlock> block = DecoderBlock::create(c, i, std::move(weights).value(), *freqs);
    ASSERT_TRUE(block.ok()) << block.status().message();
    // Alternate in-place and out-of-place runs: both must work.
    if (i % 2 == 0) {
      ASSERT_TRUE(runner.run(*block, x.data(), kSequences, x.data(), pool).ok());
    } else {
      std::vector<float> y(x.size());
      ASSERT_TRUE(runner.run(*block, x.data(), kSequences, y.data(), pool).ok());
      x = std::move(y);
    }
  }
  Expected<std::vector<float>> norm = src.output_norm();
  ASSERT_TRUE(norm.ok());
  Matrix head_matrix;
  if (c.tied_embeddings) {
    head_matrix = Matrix{c.vocab_size, c.dim, *table, {}};
  } else {
    Expected<Matrix> head = src.lm_head();
    ASSERT_TRUE(head.ok());
    head_matrix = std::move(head).value();
  }
  const DenseLinear head(std::move(head_matrix));
  const int64_t n = static_cast<int64_t>(tokens.size());
  std::vector<float> normed(x.size());  // [n, dim]
  for (int64_t t = 0; t < n; ++t)
    rms_norm(x.data() + t * c.dim, norm->data(), c.dim, c.norm_eps, normed.data() + t * c.dim);
  std::vector<float> got(static_cast<size_t>(n) * c.vocab_size);  // [n, vocab]
  head.forward(normed.data(), n, got.data(), pool);

  const testing::MaxDiff d = testing::max_abs_diff(got, want);
  EXPECT_LE(d.value, 1e-5f) << "worst at token " << d.index / c.vocab_size << ", vocab id " << d.index % c.vocab_size
                            << ": " << got[d.index] << " vs " << want[d.index];
}

ModelConfig tiny_config() {
  ModelConfig c;
  c.n_layers = 2;
  c.dim = 16;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 4;
  c.ffn_dim = 24;
  c.vocab_size = 40;
  c.max_seq_len = 32;
  return c;
}

TEST(LayerRunner, ReplacementSeamPerBlockAndByModelName) {
  const LoadedModel m = testing::make_random_model(tiny_config(), 9);
  const ModelConfig& c = m.config;
  Expected<DecoderBlock> block = DecoderBlock::create(c, 1, m.weights.layers[1], {});
  ASSERT_TRUE(block.ok()) << block.status().message();
  EXPECT_EQ(block->linear_name(2), "layers.1.v_proj");
  ASSERT_NE(block->find_linear("down_proj"), nullptr);
  EXPECT_EQ(block->find_linear("down_proj")->in_features(), c.ffn_dim);
  EXPECT_EQ(block->find_linear("lm_head"), nullptr);
  Status wrong = block->replace_linear(
      "k_proj", std::make_unique<DenseLinear>(Matrix{
                    c.kv_dim() + 1, c.dim, std::vector<float>(static_cast<size_t>((c.kv_dim() + 1) * c.dim)), {}}));
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.message().find("layers.1.k_proj"), std::string::npos) << wrong.message();

  // Zeroing o_proj and down_proj turns the block into the identity on the residual stream.
  ThreadPool pool(1);
  for (const char* name : {"o_proj", "down_proj"}) {
    const Linear* old = block->find_linear(name);
    Matrix zero{old->out_features(),
                old->in_features(),
                std::vector<float>(static_cast<size_t>(old->out_features() * old->in_features())),
                {}};
    ASSERT_TRUE(block->replace_linear(name, std::make_unique<DenseLinear>(std::move(zero))).ok());
  }
  std::vector<float> x(static_cast<size_t>(5 * c.dim));
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(static_cast<float>(i));
  std::vector<float> y(x.size());
  LayerRunner runner(c, 5);
  ASSERT_TRUE(runner.run(*block, x.data(), 1, y.data(), pool).ok());
  EXPECT_EQ(x, y);

  Expected<LlamaModel> model = LlamaModel::create(c, m.weights);
  ASSERT_TRUE(model.ok());
  EXPECT_EQ(model->linear_names().size(), 7u * c.n_layers + 1);
  EXPECT_NE(model->find_linear("layers.1.up_proj"), nullptr);
  EXPECT_EQ(model->find_linear("layers.2.up_proj"), nullptr);
  EXPECT_EQ(model->find_linear("layers.1.upproj"), nullptr);
  const Linear* q = model->find_linear("layers.0.q_proj");
  ASSERT_TRUE(model->replace_linear("layers.0.q_proj", std::make_unique<DenseLinear>(m.weights.layers[0].q_proj)).ok());
  EXPECT_NE(model->find_linear("layers.0.q_proj"), q);
  EXPECT_FALSE(
      model->replace_linear("layers.7.q_proj", std::make_unique<DenseLinear>(m.weights.layers[0].q_proj)).ok());
  EXPECT_FALSE(model->replace_linear("lm_head", std::make_unique<DenseLinear>(m.weights.layers[0].q_proj)).ok());
}

TEST(LayerRunner, EmbedTokensRejectsIdsOutsideTheVocabulary) {
  const ModelConfig c = tiny_config();
  std::vector<float> table(static_cast<size_t>(c.vocab_size) * c.dim);
  for (size_t i = 0; i < table.size(); ++i) table[i] = static_cast<float>(i);
  const int32_t good[] = {3, 0};
  Expected<std::vector<float>> x = embed_tokens(table, c, good, 2);
  ASSERT_TRUE(x.ok());
  EXPECT_EQ((*x)[0], 3.0f * c.dim);
  EXPECT_EQ((*x)[c.dim], 0.0f);
  const int32_t bad[] = {3, 40};
  Expected<std::vector<float>> y = embed_tokens(table, c, bad, 2);
  ASSERT_FALSE(y.ok());
  EXPECT_NE(y.status().message().find("token id 40 at index 1"), std::string::npos) << y.status().message();
}

}  // namespace
}  // namespace lowbit
