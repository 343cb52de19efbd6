// ModelSource: a model read one piece at a time gives bit for bit the weights of
// the whole-model load, for GGUF and for the HF / llama2.c copies of stories260K
// written by model_writers (which also cross-checks the three readers against
// each other); per-layer reads check shapes and values and name the tensor.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "model/loader.h"
#include "model/model_source.h"
#include "model_writers.h"
#include "test_util.h"

namespace lowbit {
namespace {

using testing::ScopedTempDir;

// Bitwise equality (distinguishes -0 from +0, unlike ==).
::testing::AssertionResult same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << "sizes " << a.size() << " vs " << b.size();
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) {
      return ::testing::AssertionFailure() << "first difference at " << i << ": " << a[i] << " vs " << b[i];
    }
  }
  return ::testing::AssertionSuccess();
}

void expect_same_matrix(const Matrix& a, const Matrix& b, const std::string& what) {
  EXPECT_EQ(a.rows, b.rows) << what;
  EXPECT_EQ(a.cols, b.cols) << what;
  EXPECT_TRUE(same_bits(a.data, b.data)) << what;
  EXPECT_TRUE(same_bits(a.bias, b.bias)) << what << ".bias";
}

// q/k rows are compared after `permute_qk` (identity when both hold the same RoPE layout).
void expect_same_layer(const LayerWeights& a, const LayerWeights& b, int index, const ModelConfig& c,
                       bool permute_qk = false) {
  const std::string p = "layer " + std::to_string(index) + " ";
  EXPECT_TRUE(same_bits(a.attn_norm, b.attn_norm)) << p << "attn_norm";
  EXPECT_TRUE(same_bits(a.ffn_norm, b.ffn_norm)) << p << "ffn_norm";
  Matrix q = a.q_proj, k = a.k_proj;
  if (permute_qk) {
    q.data = testing::permute_rope_rows(q.data, c.n_heads, c.dim, true);
    k.data = testing::permute_rope_rows(k.data, c.n_kv_heads, c.dim, true);
  }
  expect_same_matrix(q, b.q_proj, p + "q_proj");
  expect_same_matrix(k, b.k_proj, p + "k_proj");
  expect_same_matrix(a.v_proj, b.v_proj, p + "v_proj");
  expect_same_matrix(a.o_proj, b.o_proj, p + "o_proj");
  expect_same_matrix(a.gate_proj, b.gate_proj, p + "gate_proj");
  expect_same_matrix(a.up_proj, b.up_proj, p + "up_proj");
  expect_same_matrix(a.down_proj, b.down_proj, p + "down_proj");
}

// Reads `source` piece by piece, layers in reverse order, and compares every piece
// with `full` (q/k permuted from full's layout to the source's when asked).
void expect_source_matches(const ModelSource& source, const LoadedModel& full, bool permute_qk = false) {
  const ModelConfig& c = source.config();
  ASSERT_EQ(c.n_layers, full.config.n_layers);
  Expected<std::vector<float>> embedding = source.token_embedding();
  ASSERT_TRUE(embedding.ok()) << embedding.status().message();
  EXPECT_TRUE(same_bits(*embedding, full.weights.token_embedding));
  for (int i = c.n_layers - 1; i >= 0; --i) {
    Expected<LayerWeights> layer = source.layer(i);
    ASSERT_TRUE(layer.ok()) << layer.status().message();
    expect_same_layer(full.weights.layers[i], *layer, i, c, permute_qk);
  }
  Expected<std::vector<float>> norm = source.output_norm();
  ASSERT_TRUE(norm.ok()) << norm.status().message();
  EXPECT_TRUE(same_bits(*norm, full.weights.output_norm));
  Expected<Matrix> head = source.lm_head();
  ASSERT_TRUE(head.ok()) << head.status().message();
  expect_same_matrix(full.weights.lm_head, *head, "lm_head");
  Expected<std::vector<float>> freqs = source.rope_freq_factors();
  ASSERT_TRUE(freqs.ok()) << freqs.status().message();
  EXPECT_TRUE(same_bits(*freqs, full.weights.rope_freq_factors));
}

std::unique_ptr<ModelSource> open_or_fail(const std::string& path, const LoadOptions& options = {}) {
  Expected<std::unique_ptr<ModelSource>> s = open_model_source(path, options);
  EXPECT_TRUE(s.ok()) << s.status().message();
  return s.ok() ? std::move(s).value() : nullptr;
}

class ModelSourceStories : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = testing::shared_path("models/stories260K/stories260K.gguf");
    if (path_.empty()) GTEST_SKIP() << "shared test material missing: models/stories260K/stories260K.gguf";
    Expected<LoadedModel> m = load_gguf_model(path_);
    ASSERT_TRUE(m.ok()) << m.status().message();
    gguf_ = std::move(m).value();
  }

  std::string path_;
  LoadedModel gguf_;
};

TEST_F(ModelSourceStories, GgufLayerByLayerEqualsFullLoad) {
  std::unique_ptr<ModelSource> source = open_or_fail(path_);
  ASSERT_NE(source, nullptr);
  EXPECT_EQ(source->summary().format, "gguf");
  EXPECT_EQ(source->summary().tensors.size(), gguf_.summary.tensors.size());
  EXPECT_EQ(source->config().n_layers, 5);
  expect_source_matches(*source, gguf_);
  // Reading a piece twice gives the same values (nothing is consumed).
  Expected<LayerWeights> again = source->layer(2);
  ASSERT_TRUE(again.ok());
  expect_same_layer(gguf_.weights.layers[2], *again, 2, source->config());
  Expected<std::unique_ptr<Tokenizer>> tok = source->tokenizer();
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  ASSERT_NE(*tok, nullptr);
  EXPECT_EQ((*tok)->encode("Once upon a time"), gguf_.tokenizer->encode("Once upon a time"));
}

TEST_F(ModelSourceStories, HfCopyLayerByLayerEqualsFullLoadAndGguf) {
  const testing::SpmVocab vocab = std::move(testing::read_gguf_spm_vocab(path_)).value();
  ScopedTempDir dir("src_hf");
  for (bool sharded : {false, true}) {
    const std::string folder = dir.file(sharded ? "sharded" : "single");
    ASSERT_TRUE(testing::write_hf_checkpoint(gguf_, &vocab, folder, {.sharded = sharded}).ok());
    std::unique_ptr<ModelSource> source = open_or_fail(folder);
    ASSERT_NE(source, nullptr);
    EXPECT_EQ(source->summary().format, "huggingface");
    Expected<LoadedModel> full = load_hf_model(folder);
    ASSERT_TRUE(full.ok()) << full.status().message();
    expect_source_matches(*source, *full);
    // The HF copy holds q/k in the half-split layout; everything else as GGUF.
    expect_source_matches(*source, gguf_, /*permute_qk=*/true);
  }
}

TEST_F(ModelSourceStories, Llama2cCopyLayerByLayerEqualsFullLoadAndGguf) {
  LB_REQUIRE_SHARED(tok_path, "models/stories260K/tok512.bin");
  ScopedTempDir dir("src_l2c");
  const std::string bin = dir.file("stories260K.bin");
  ASSERT_TRUE(testing::write_llama2c_checkpoint(gguf_, bin).ok());
  std::unique_ptr<ModelSource> source = open_or_fail(bin, {.tokenizer_path = tok_path});
  ASSERT_NE(source, nullptr);
  EXPECT_EQ(source->summary().format, "llama2c");
  Expected<LoadedModel> full = load_llama2c_model(bin, tok_path);
  ASSERT_TRUE(full.ok()) << full.status().message();
  expect_source_matches(*source, *full);
  expect_source_matches(*source, gguf_);
  Expected<std::unique_ptr<Tokenizer>> tok = source->tokenizer();
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  ASSERT_NE(*tok, nullptr);
  EXPECT_EQ((*tok)->vocab_size(), 512);
  // Without a tokenizer path a llama2.c source has none (not an error).
  std::unique_ptr<ModelSource> bare = open_or_fail(bin);
  ASSERT_NE(bare, nullptr);
  Expected<std::unique_ptr<Tokenizer>> none = bare->tokenizer();
  ASSERT_TRUE(none.ok()) << none.status().message();
  EXPECT_EQ(*none, nullptr);
}

ModelConfig tiny_config() {
  ModelConfig c;
  c.n_layers = 3;
  c.dim = 16;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 4;
  c.ffn_dim = 24;
  c.vocab_size = static_cast<int>(testing::make_test_spm_vocab().pieces.size());
  c.max_seq_len = 32;
  c.rope_layout = RopeLayout::kAdjacentPairs;
  return c;
}

// A bad value in one layer fails that layer's read only, naming file and tensor,
// so a streaming pipeline stops at the broken layer with a useful message.
TEST(ModelSourceErrors, NonFiniteValueFailsOnlyItsLayer) {
  LoadedModel m = testing::make_random_model(tiny_config(), 3);
  m.weights.layers[1].up_proj.data[5] = std::numeric_limits<float>::quiet_NaN();
  ScopedTempDir dir("src_nan");
  const std::string bin = dir.file("m.bin");
  ASSERT_TRUE(testing::write_llama2c_checkpoint(m, bin).ok());
  std::unique_ptr<ModelSource> source = open_or_fail(bin);
  ASSERT_NE(source, nullptr);
  EXPECT_TRUE(source->layer(0).ok());
  EXPECT_TRUE(source->layer(2).ok());
  Expected<LayerWeights> bad = source->layer(1);
  ASSERT_FALSE(bad.ok());
  const std::string& msg = bad.status().message();
  EXPECT_NE(msg.find("m.bin"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'layers.1.up_proj'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("index 5"), std::string::npos) << msg;
  // The whole-model load fails the same way.
  Expected<LoadedModel> full = load_llama2c_model(bin, "");
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.status().message(), msg);
}

TEST(ModelSourceErrors, ShapeMismatchFailsOnlyItsLayerNamingTheStoredTensor) {
  LoadedModel m = testing::make_random_model(tiny_config(), 4);
  Matrix& v = m.weights.layers[2].v_proj;
  v.rows -= 1;
  v.data.resize(static_cast<size_t>(v.rows * v.cols));
  const testing::SpmVocab vocab = testing::make_test_spm_vocab();
  ScopedTempDir dir("src_shape");
  ASSERT_TRUE(testing::write_hf_checkpoint(m, &vocab, dir.file("m")).ok());
  std::unique_ptr<ModelSource> source = open_or_fail(dir.file("m"));
  ASSERT_NE(source, nullptr);
  EXPECT_TRUE(source->layer(1).ok());
  Expected<LayerWeights> bad = source->layer(2);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("model.layers.2.self_attn.v_proj.weight"), std::string::npos)
      << bad.status().message();
}

TEST(ModelSourceErrors, LayerIndexOutOfRangeAndUnknownPaths) {
  LoadedModel m = testing::make_random_model(tiny_config(), 5);
  ScopedTempDir dir("src_range");
  const std::string bin = dir.file("m.bin");
  ASSERT_TRUE(testing::write_llama2c_checkpoint(m, bin).ok());
  std::unique_ptr<ModelSource> source = open_or_fail(bin);
  ASSERT_NE(source, nullptr);
  for (int bad : {-1, 3}) {
    Expected<LayerWeights> l = source->layer(bad);
    ASSERT_FALSE(l.ok()) << bad;
    EXPECT_NE(l.status().message().find("out of range [0, 3)"), std::string::npos) << l.status().message();
  }
  Expected<std::unique_ptr<ModelSource>> missing = open_model_source(dir.file("absent.gguf"), {});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("no such file"), std::string::npos);
  ASSERT_TRUE(write_file_atomic(dir.file("notes.txt"), "hello").ok());
  Expected<std::unique_ptr<ModelSource>> text = open_model_source(dir.file("notes.txt"), {});
  ASSERT_FALSE(text.ok());
  EXPECT_NE(text.status().message().find("unrecognised model"), std::string::npos);
}

}  // namespace
}  // namespace lowbit
