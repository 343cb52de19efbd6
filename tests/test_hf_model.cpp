// Hugging Face folder loader. stories260K.gguf is written out as an HF checkpoint
// (q/k permuted to the half-split layout exactly as transformers' conversion
// script does, tokenizer.json derived from the SentencePiece vocab) and loaded
// back: the logits must equal the GGUF model's and the tokenizer must encode the
// golden texts the same way. Random small models cover qwen2 biases, GQA, tied
// embeddings and llama3 RoPE scaling; broken folders must fail naming what is wrong.
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/half.h"
#include "core/mapped_file.h"
#include "model/loader.h"
#include "model_writers.h"
#include "test_util.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;
using testing::ScopedTempDir;

constexpr float kLogitTolerance = 1e-4f;

nlohmann::json read_golden(const std::string& path) {
  Expected<std::string> text = read_text_file(path);
  EXPECT_TRUE(text.ok()) << text.status().message();
  return text.ok() ? nlohmann::json::parse(*text) : nlohmann::json();
}

void expect_logits_match(const LoadedModel& a, const LoadedModel& b, const std::vector<int32_t>& tokens) {
  Expected<std::vector<float>> la = testing::forward_logits(a, tokens);
  Expected<std::vector<float>> lb = testing::forward_logits(b, tokens);
  ASSERT_TRUE(la.ok()) << la.status().message();
  ASSERT_TRUE(lb.ok()) << lb.status().message();
  ASSERT_EQ(la->size(), lb->size());
  const testing::MaxDiff d = testing::max_abs_diff(*la, *lb);
  const size_t vocab = static_cast<size_t>(a.config.vocab_size);
  EXPECT_LE(d.value, kLogitTolerance) << "worst at token " << d.index / vocab << ", vocab id " << d.index % vocab
                                      << ": " << (*la)[d.index] << " vs " << (*lb)[d.index];
}

// Loads stories260K.gguf and writes it as an HF folder; the test decides how.
class HfModelFromGguf : public ::testing::Test {
 protected:
  void SetUp() override {
    gguf_path_ = ::lowbit::testing::shared_path("models/stories260K/stories260K.gguf");
    if (gguf_path_.empty()) GTEST_SKIP() << "shared test material missing: models/stories260K/stories260K.gguf";
    Expected<LoadedModel> m = load_gguf_model(gguf_path_);
    ASSERT_TRUE(m.ok()) << m.status().message();
    gguf_ = std::move(m).value();
    Expected<testing::SpmVocab> v = testing::read_gguf_spm_vocab(gguf_path_);
    ASSERT_TRUE(v.ok()) << v.status().message();
    vocab_ = std::move(v).value();
    golden_ = read_golden((fs::path(gguf_path_).parent_path() / "golden_reference.json").string());
    for (const auto& t : golden_["prompt_tokens"]) prompt_.push_back(t.get<int32_t>());
    ASSERT_EQ(prompt_.size(), 5u);  // BOS + "Once upon a time"
  }

  LoadedModel write_and_load(const ScopedTempDir& dir, bool sharded) {
    const std::string folder = dir.file("hf");
    Status s = testing::write_hf_checkpoint(gguf_, &vocab_, folder, {.sharded = sharded});
    EXPECT_TRUE(s.ok()) << s.message();
    Expected<LoadedModel> m = load_hf_model(folder);
    EXPECT_TRUE(m.ok()) << m.status().message();
    return m.ok() ? std::move(m).value() : LoadedModel();
  }

  // Embedding, final norm, 9 per layer, and lm_head unless tied.
  size_t n_stored_tensors() const {
    return 2u + 9u * gguf_.config.n_layers + (gguf_.config.tied_embeddings ? 0u : 1u);
  }

  std::string gguf_path_;
  LoadedModel gguf_;
  testing::SpmVocab vocab_;
  nlohmann::json golden_;
  std::vector<int32_t> prompt_;
};

TEST_F(HfModelFromGguf, SingleFileLogitsMatchGguf) {
  ScopedTempDir dir("hf_single");
  LoadedModel hf = write_and_load(dir, false);
  ASSERT_FALSE(hf.weights.layers.empty());
  EXPECT_EQ(hf.config.rope_layout, RopeLayout::kHalfSplit);
  EXPECT_EQ(hf.config.n_kv_heads, 4);
  EXPECT_EQ(hf.config.norm_eps, gguf_.config.norm_eps);
  EXPECT_EQ(hf.config.tied_embeddings, gguf_.config.tied_embeddings);
  EXPECT_EQ(hf.summary.format, "huggingface");
  EXPECT_EQ(hf.summary.tensors.size(), n_stored_tensors());
  // Stored as HF does it: q/k rows permuted, everything else untouched.
  const LayerWeights& g = gguf_.weights.layers[1];
  EXPECT_EQ(hf.weights.layers[1].q_proj.data,
            testing::permute_rope_rows(g.q_proj.data, gguf_.config.n_heads, gguf_.config.dim, true));
  EXPECT_EQ(hf.weights.layers[1].k_proj.data,
            testing::permute_rope_rows(g.k_proj.data, gguf_.config.n_kv_heads, gguf_.config.dim, true));
  EXPECT_NE(hf.weights.layers[1].q_proj.data, g.q_proj.data);
  EXPECT_EQ(hf.weights.layers[1].v_proj.data, g.v_proj.data);
  expect_logits_match(gguf_, hf, prompt_);
}

TEST_F(HfModelFromGguf, ShardedLogitsMatchGguf) {
  ScopedTempDir dir("hf_sharded");
  LoadedModel hf = write_and_load(dir, true);
  ASSERT_FALSE(hf.weights.layers.empty());
  EXPECT_TRUE(fs::exists(dir.path() / "hf" / "model-00002-of-00002.safetensors"));
  EXPECT_FALSE(fs::exists(dir.path() / "hf" / "model.safetensors"));
  EXPECT_EQ(hf.summary.tensors.size(), n_stored_tensors());
  expect_logits_match(gguf_, hf, prompt_);
}

TEST_F(HfModelFromGguf, TokenizerJsonEncodesLikeGguf) {
  ScopedTempDir dir("hf_tok");
  LoadedModel hf = write_and_load(dir, false);
  ASSERT_NE(hf.tokenizer, nullptr);
  ASSERT_NE(gguf_.tokenizer, nullptr);
  EXPECT_EQ(hf.tokenizer->vocab_size(), 512);
  EXPECT_EQ(hf.tokenizer->bos_id(), 1);
  for (const auto& [text, ids] : golden_["encode_no_bos"].items()) {
    const std::vector<int32_t> golden = ids.get<std::vector<int32_t>>();
    EXPECT_EQ(hf.tokenizer->encode(text), golden) << text;
    EXPECT_EQ(hf.tokenizer->encode(text), gguf_.tokenizer->encode(text)) << text;
  }
}

TEST(HfModelMerges, DerivedLikeSentencePieceExtractor) {
  // Scores: "ab" -1 (id 5), "abc" -2 (id 6) splits as a+bc and ab+c, "bc" -3 (id 7).
  testing::SpmVocab v;
  v.pieces = {"<unk>", "<s>", "</s>", "a", "b", "ab", "abc", "bc", "c"};
  v.scores = {0, 0, 0, -10, -11, -1, -2, -3, -12};
  v.types = {2, 3, 3, 1, 1, 1, 1, 1, 1};
  const std::vector<std::string> expected = {"a b", "a bc", "ab c", "b c"};
  EXPECT_EQ(testing::spm_merges(v), expected);
  // Multi-byte characters are split only at character boundaries.
  v.pieces = {"<unk>", "<s>", "</s>", "▁", "x", "▁x"};
  v.scores = {0, 0, 0, -5, -6, -1};
  v.types = {2, 3, 3, 1, 1, 1};
  EXPECT_EQ(testing::spm_merges(v), std::vector<std::string>{"▁ x"});
}

ModelConfig small_config(const std::string& architecture) {
  ModelConfig c;
  c.architecture = architecture;
  c.qkv_bias = architecture == "qwen2";
  c.n_layers = 2;
  c.dim = 32;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 8;
  c.ffn_dim = 48;
  c.vocab_size = static_cast<int>(testing::make_test_spm_vocab().pieces.size());
  c.max_seq_len = 64;
  c.norm_eps = 1e-6f;
  c.rope_theta = 500000.0;
  c.rope_layout = RopeLayout::kAdjacentPairs;
  return c;
}

TEST(HfModelRandom, Qwen2BiasesTiedLlama3ScalingRoundTrip) {
  ModelConfig c = small_config("qwen2");
  c.tied_embeddings = true;
  c.rope_scaling = {.llama3 = true, .factor = 8.0, .low_freq_factor = 1.0, .high_freq_factor = 4.0,
                    .original_max_position = 16};
  const LoadedModel source = testing::make_random_model(c, 7);
  const testing::SpmVocab vocab = testing::make_test_spm_vocab();
  ScopedTempDir dir("hf_qwen2");
  ASSERT_TRUE(testing::write_hf_checkpoint(source, &vocab, dir.file("m"), {.sharded = true}).ok());
  Expected<LoadedModel> loaded = load_hf_model(dir.file("m"));
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  const ModelConfig& lc = loaded->config;
  EXPECT_EQ(lc.architecture, "qwen2");
  EXPECT_TRUE(lc.qkv_bias);
  EXPECT_TRUE(lc.tied_embeddings);
  EXPECT_TRUE(loaded->weights.lm_head.empty());
  EXPECT_EQ(lc.rope_theta, 500000.0);
  EXPECT_TRUE(lc.rope_scaling.llama3);
  EXPECT_EQ(lc.rope_scaling.factor, 8.0);
  EXPECT_EQ(lc.rope_scaling.original_max_position, 16);
  EXPECT_EQ(lc.norm_eps, 1e-6f);
  EXPECT_EQ(lc.head_dim, 8);
  const LayerWeights& s = source.weights.layers[0];
  const LayerWeights& l = loaded->weights.layers[0];
  EXPECT_EQ(l.k_proj.bias, testing::permute_rope_rows(s.k_proj.bias, c.n_kv_heads, 1, true));
  EXPECT_EQ(l.v_proj.bias, s.v_proj.bias);
  EXPECT_EQ(testing::permute_rope_rows(l.q_proj.data, c.n_heads, c.dim, false), s.q_proj.data);
  // Same function in the other RoPE layout: positions past original_max_position
  // exercise the scaled frequencies.
  std::vector<int32_t> tokens;
  for (int i = 0; i < 20; ++i) tokens.push_back((i * 37 + 5) % c.vocab_size);
  expect_logits_match(source, *loaded, tokens);
}

TEST(HfModelRandom, Bf16CheckpointLoadsAsRoundedWeights) {
  const LoadedModel source = testing::make_random_model(small_config("mistral"), 3);
  const testing::SpmVocab vocab = testing::make_test_spm_vocab();
  ScopedTempDir dir("hf_bf16");
  ASSERT_TRUE(testing::write_hf_checkpoint(source, &vocab, dir.file("m"), {.dtype = SafetensorsDtype::kBF16}).ok());
  Expected<LoadedModel> loaded = load_hf_model(dir.file("m"));
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_EQ(loaded->config.architecture, "mistral");
  EXPECT_EQ(loaded->summary.tensors[0].dtype, "bf16");
  const std::vector<float>& a = source.weights.layers[1].down_proj.data;
  const std::vector<float>& b = loaded->weights.layers[1].down_proj.data;
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(b[i], bf16_to_float(float_to_bf16(a[i]))) << i;
}

// Each test starts from a good random llama checkpoint and edits one thing,
// mostly breaking it.
class HfModelEditedFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    source_ = testing::make_random_model(small_config("llama"), 11);
    vocab_ = testing::make_test_spm_vocab();
  }
  std::string write(const LoadedModel& m, bool with_tokenizer = true) {
    const std::string folder = dir_.file("m");
    Status s = testing::write_hf_checkpoint(m, with_tokenizer ? &vocab_ : nullptr, folder);
    EXPECT_TRUE(s.ok()) << s.message();
    return folder;
  }
  std::string load_error(const std::string& folder) {
    Expected<LoadedModel> m = load_hf_model(folder);
    EXPECT_FALSE(m.ok());
    return m.ok() ? std::string() : m.status().message();
  }
  void edit_config(const std::function<void(nlohmann::json&)>& edit) {
    const std::string path = dir_.file("m/config.json");
    nlohmann::json j = nlohmann::json::parse(std::move(read_text_file(path)).value());
    edit(j);
    ASSERT_TRUE(write_file_atomic(path, j.dump()).ok());
  }

  ScopedTempDir dir_{"hf_bad"};
  LoadedModel source_;
  testing::SpmVocab vocab_;
};

TEST_F(HfModelEditedFolder, ConfigIsNotJson) {
  const std::string folder = write(source_);
  ASSERT_TRUE(write_file_atomic(folder + "/config.json", "{\"hidden_size\": 32,").ok());
  const std::string msg = load_error(folder);
  EXPECT_NE(msg.find("config.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("JSON"), std::string::npos) << msg;
}

TEST_F(HfModelEditedFolder, UnknownModelTypeIsNamed) {
  write(source_);
  edit_config([](nlohmann::json& j) {
    j["model_type"] = "gpt_neox";
    j["architectures"] = {"GPTNeoXForCausalLM"};
  });
  const std::string msg = load_error(dir_.file("m"));
  EXPECT_NE(msg.find("'gpt_neox'"), std::string::npos) << msg;
}

TEST_F(HfModelEditedFolder, ArchitecturesUsedWhenModelTypeAbsent) {
  write(source_);
  edit_config([](nlohmann::json& j) {
    j.erase("model_type");
    j["architectures"] = {"FalconForCausalLM"};
  });
  EXPECT_NE(load_error(dir_.file("m")).find("'FalconForCausalLM'"), std::string::npos);
}

TEST_F(HfModelEditedFolder, MissingConfigKeyIsNamed) {
  write(source_);
  edit_config([](nlohmann::json& j) { j.erase("intermediate_size"); });
  const std::string msg = load_error(dir_.file("m"));
  EXPECT_NE(msg.find("\"intermediate_size\""), std::string::npos) << msg;
}

TEST_F(HfModelEditedFolder, TensorShapeMismatchNamesTensorAndBothShapes) {
  LoadedModel broken = testing::clone_weights(source_);
  Matrix& v = broken.weights.layers[1].v_proj;
  v.rows -= 1;
  v.data.resize(static_cast<size_t>(v.rows * v.cols));
  const std::string msg = load_error(write(broken));
  EXPECT_NE(msg.find("model.layers.1.self_attn.v_proj.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[15, 32]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[16, 32]"), std::string::npos) << msg;
}

TEST_F(HfModelEditedFolder, TruncatedSafetensorsNamesFileAndTensor) {
  const std::string folder = write(source_);
  const fs::path file = fs::path(folder) / "model.safetensors";
  fs::resize_file(file, fs::file_size(file) - 10);
  const std::string msg = load_error(folder);
  EXPECT_NE(msg.find("model.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'lm_head.weight'"), std::string::npos) << msg;  // the last tensor
}

TEST_F(HfModelEditedFolder, MissingLmHeadWhenUntied) {
  LoadedModel tied = testing::clone_weights(source_);
  tied.config.tied_embeddings = true;
  tied.weights.lm_head = Matrix();
  write(tied);
  edit_config([](nlohmann::json& j) { j["tie_word_embeddings"] = false; });
  const std::string msg = load_error(dir_.file("m"));
  EXPECT_NE(msg.find("'lm_head.weight' not found"), std::string::npos) << msg;
}

TEST_F(HfModelEditedFolder, MissingTokenizerAndWeights) {
  const std::string folder = write(source_, false);
  EXPECT_NE(load_error(folder).find("tokenizer.json"), std::string::npos);
  fs::remove(fs::path(folder) / "model.safetensors");
  EXPECT_NE(load_error(folder).find("model.safetensors"), std::string::npos);
  EXPECT_NE(load_error(dir_.file("nowhere")).find("not a folder"), std::string::npos);
}

TEST_F(HfModelEditedFolder, ShardIndexNamingMissingTensor) {
  const std::string folder = dir_.file("m");
  ASSERT_TRUE(testing::write_hf_checkpoint(source_, &vocab_, folder, {.sharded = true}).ok());
  const std::string index_path = folder + "/model.safetensors.index.json";
  nlohmann::json index = nlohmann::json::parse(std::move(read_text_file(index_path)).value());
  // Point the final norm at the first shard, which does not hold it.
  index["weight_map"]["model.norm.weight"] = "model-00001-of-00002.safetensors";
  ASSERT_TRUE(write_file_atomic(index_path, index.dump()).ok());
  const std::string msg = load_error(folder);
  EXPECT_NE(msg.find("'model.norm.weight'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("model-00001-of-00002.safetensors"), std::string::npos) << msg;
}

TEST_F(HfModelEditedFolder, SlidingWindowCapsContext) {
  write(source_);
  edit_config([](nlohmann::json& j) {
    j["model_type"] = "mistral";
    j["sliding_window"] = 16;
  });
  Expected<LoadedModel> mistral = load_hf_model(dir_.file("m"));
  ASSERT_TRUE(mistral.ok()) << mistral.status().message();
  EXPECT_EQ(mistral->config.max_seq_len, 16);
  // qwen2 ignores the window unless use_sliding_window is true.
  LoadedModel qwen = testing::make_random_model(small_config("qwen2"), 4);
  ASSERT_TRUE(testing::write_hf_checkpoint(qwen, &vocab_, dir_.file("q")).ok());
  const std::string path = dir_.file("q/config.json");
  nlohmann::json j = nlohmann::json::parse(std::move(read_text_file(path)).value());
  j["sliding_window"] = 16;
  j["use_sliding_window"] = false;
  ASSERT_TRUE(write_file_atomic(path, j.dump()).ok());
  Expected<LoadedModel> q = load_hf_model(dir_.file("q"));
  ASSERT_TRUE(q.ok()) << q.status().message();
  EXPECT_EQ(q->config.max_seq_len, 64);
}

TEST_F(HfModelEditedFolder, OutOfRangeSizeIsNamed) {
  write(source_);
  edit_config([](nlohmann::json& j) { j["num_key_value_heads"] = 0; });
  const std::string msg = load_error(dir_.file("m"));
  EXPECT_NE(msg.find("\"num_key_value_heads\" = 0"), std::string::npos) << msg;
}

}  // namespace
}  // namespace lowbit
