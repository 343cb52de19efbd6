// llama2.c .bin loader. stories260K.gguf written as a version-0 .bin and loaded
// back must give the GGUF model's weights bit for bit and its logits; broken
// files must fail with a message that says what the header implies.
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "model/loader.h"
#include "model_writers.h"
#include "test_util.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;
using testing::ScopedTempDir;

ModelConfig llama2c_config(bool tied) {
  ModelConfig c;
  c.architecture = "llama";
  c.n_layers = 2;
  c.dim = 24;
  c.n_heads = 6;
  c.n_kv_heads = 3;
  c.head_dim = 4;
  c.ffn_dim = 40;
  c.vocab_size = 37;
  c.max_seq_len = 9;
  c.norm_eps = 1e-5f;
  c.rope_theta = 10000.0;
  c.rope_layout = RopeLayout::kAdjacentPairs;
  c.tied_embeddings = tied;
  return c;
}

void expect_same_weights(const ModelWeights& a, const ModelWeights& b) {
  ASSERT_EQ(a.layers.size(), b.layers.size());
  EXPECT_EQ(a.token_embedding, b.token_embedding);
  EXPECT_EQ(a.output_norm, b.output_norm);
  EXPECT_EQ(a.lm_head.data, b.lm_head.data);
  for (size_t i = 0; i < a.layers.size(); ++i) {
    const LayerWeights& x = a.layers[i];
    const LayerWeights& y = b.layers[i];
    EXPECT_EQ(x.attn_norm, y.attn_norm) << i;
    EXPECT_EQ(x.ffn_norm, y.ffn_norm) << i;
    for (auto m : {&LayerWeights::q_proj, &LayerWeights::k_proj, &LayerWeights::v_proj, &LayerWeights::o_proj,
                   &LayerWeights::gate_proj, &LayerWeights::up_proj, &LayerWeights::down_proj}) {
      EXPECT_EQ((x.*m).rows, (y.*m).rows) << i;
      EXPECT_EQ((x.*m).cols, (y.*m).cols) << i;
      EXPECT_EQ((x.*m).data, (y.*m).data) << i;
    }
  }
}

std::string load_error(const std::string& path) {
  Expected<LoadedModel> m = load_llama2c_model(path, "");
  EXPECT_FALSE(m.ok());
  return m.ok() ? std::string() : m.status().message();
}

TEST(Llama2cFromGguf, WeightsAndLogitsMatchGguf) {
  LB_REQUIRE_SHARED(gguf_path, "models/stories260K/stories260K.gguf");
  LB_REQUIRE_SHARED(tok_path, "models/stories260K/tok512.bin");
  Expected<LoadedModel> gguf = load_gguf_model(gguf_path);
  ASSERT_TRUE(gguf.ok()) << gguf.status().message();
  ASSERT_EQ(gguf->config.rope_layout, RopeLayout::kAdjacentPairs);
  ScopedTempDir dir("l2c_gguf");
  const std::string bin = dir.file("stories260K.bin");
  Status s = testing::write_llama2c_checkpoint(*gguf, bin);
  ASSERT_TRUE(s.ok()) << s.message();

  Expected<LoadedModel> m = load_llama2c_model(bin, tok_path);
  ASSERT_TRUE(m.ok()) << m.status().message();
  const ModelConfig& c = m->config;
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.tied_embeddings, gguf->config.tied_embeddings);
  EXPECT_EQ(c.rope_layout, RopeLayout::kAdjacentPairs);
  EXPECT_EQ(m->summary.format, "llama2c");
  EXPECT_EQ(m->summary.file_bytes, fs::file_size(bin));
  expect_same_weights(gguf->weights, m->weights);

  // Same weights and layout: the logits agree to rounding of the forward pass.
  const nlohmann::json golden = nlohmann::json::parse(
      std::move(read_text_file((fs::path(gguf_path).parent_path() / "golden_reference.json").string())).value());
  const std::vector<int32_t> prompt = golden["prompt_tokens"].get<std::vector<int32_t>>();
  Expected<std::vector<float>> a = testing::forward_logits(*gguf, prompt);
  Expected<std::vector<float>> b = testing::forward_logits(*m, prompt);
  ASSERT_TRUE(a.ok()) << a.status().message();
  ASSERT_TRUE(b.ok()) << b.status().message();
  const testing::MaxDiff d = testing::max_abs_diff(*a, *b);
  EXPECT_LE(d.value, 1e-4f) << "worst at flat index " << d.index;

  ASSERT_NE(m->tokenizer, nullptr);
  for (const auto& [text, ids] : golden["encode_no_bos"].items()) {
    EXPECT_EQ(m->tokenizer->encode(text), ids.get<std::vector<int32_t>>()) << text;
  }
}

TEST(Llama2cRandom, TiedModelFromHalfSplitLayoutRoundTrips) {
  const LoadedModel source = testing::make_random_model(llama2c_config(true), 5);
  // The same model as HF would hold it: q/k rows in half-split order.
  LoadedModel half = testing::clone_weights(source);
  half.config.rope_layout = RopeLayout::kHalfSplit;
  for (auto& l : half.weights.layers) {
    l.q_proj.data = testing::permute_rope_rows(l.q_proj.data, source.config.n_heads, source.config.dim, true);
    l.k_proj.data = testing::permute_rope_rows(l.k_proj.data, source.config.n_kv_heads, source.config.dim, true);
  }
  ScopedTempDir dir("l2c_tied");
  const std::string bin = dir.file("m.bin");
  ASSERT_TRUE(testing::write_llama2c_checkpoint(half, bin).ok());
  Expected<LoadedModel> m = load_llama2c_model(bin, "");
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->tokenizer, nullptr);
  EXPECT_TRUE(m->config.tied_embeddings);
  EXPECT_TRUE(m->weights.lm_head.empty());
  EXPECT_EQ(m->config.max_seq_len, 9);
  EXPECT_EQ(m->config.head_dim, 4);
  expect_same_weights(source.weights, m->weights);
  for (const auto& t : m->summary.tensors) EXPECT_NE(t.name, "wcls");
}

TEST(Llama2cMalformed, SizeMismatchStatesWhatHeaderImplies) {
  ScopedTempDir dir("l2c_size");
  const std::string bin = dir.file("m.bin");
  ASSERT_TRUE(testing::write_llama2c_checkpoint(testing::make_random_model(llama2c_config(false), 1), bin).ok());
  const uint64_t size = fs::file_size(bin);
  fs::resize_file(bin, size - 4);
  std::string msg = load_error(bin);
  EXPECT_NE(msg.find("m.bin"), std::string::npos) << msg;
  EXPECT_NE(msg.find(fmt::format("has {} bytes", size - 4)), std::string::npos) << msg;
  EXPECT_NE(msg.find(fmt::format("implies {}", size)), std::string::npos) << msg;
  fs::resize_file(bin, size + 4);  // trailing bytes are as wrong as missing ones
  EXPECT_NE(load_error(bin).find(fmt::format("implies {}", size)), std::string::npos);
}

TEST(Llama2cMalformed, BadHeaders) {
  ScopedTempDir dir("l2c_header");
  const std::string bin = dir.file("h.bin");
  auto header_error = [&](std::vector<int32_t> ints) {
    std::string bytes(ints.size() * 4, '\0');
    std::memcpy(bytes.data(), ints.data(), bytes.size());
    EXPECT_TRUE(write_file_atomic(bin, bytes).ok());
    return load_error(bin);
  };
  EXPECT_NE(header_error({64, 172, 5}).find("truncated"), std::string::npos);
  EXPECT_NE(header_error({64, 172, 5, 8, 0, 512, 256}).find("n_kv_heads = 0"), std::string::npos);
  EXPECT_NE(header_error({64, 172, -5, 8, 4, 512, 256}).find("n_layers = -5"), std::string::npos);
  EXPECT_NE(header_error({64, 172, 5, 7, 7, 512, 256}).find("inconsistent"), std::string::npos);
  EXPECT_NE(header_error({0x616b3432, 1, 64, 172, 5, 8, 4}).find("version 1/2"), std::string::npos);
}

TEST(Llama2cMalformed, WriterRefusesWhatTheFormatCannotHold) {
  ModelConfig c = llama2c_config(false);
  c.architecture = "qwen2";
  c.qkv_bias = true;
  ScopedTempDir dir("l2c_writer");
  EXPECT_FALSE(testing::write_llama2c_checkpoint(testing::make_random_model(c, 2), dir.file("q.bin")).ok());
  EXPECT_FALSE(fs::exists(dir.file("q.bin")));
}

}  // namespace
}  // namespace lowbit
