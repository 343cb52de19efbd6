// `lowbit export --to gguf`: the streaming writer; the exact rules (proved bit for
// bit on awkward groups); the metadata keys llama.cpp reads; GGUF, Hugging Face
// (half-split RoPE re-paired, qwen2 biases, Llama-3 scaling) and lowbit sources
// read back with the same weights; the lossless w4g128-rtn export (weights
// bit-identical, PPL equal); every refusal with its message and exit code; and the
// independent check with the PyPI gguf package (tests/python/check_gguf_export.py), whose
// dequantization must equal lowbit's bit for bit for every exported type.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "formats/gguf_blocks.h"
#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "model/loader.h"
#include "model/lowbit_file.h"
#include "model_writers.h"
#include "pipeline/export.h"
#include "pipeline/export_gguf_types.h"
#include "quant/quantized_weight.h"
#include "test_model_shapes.h"
#include "test_quantize_util.h"
#include "test_util.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using testing::get;
using testing::run_lowbit;
using testing::ScopedTempDir;

// Every type issue 16 lists, plus the float types.
const std::vector<std::string> kIssueTypes = {"q8_0", "q6_K", "q5_K", "q4_K", "q5_0", "q5_1",
                                              "q4_0", "q4_1", "q3_K", "q2_K", "iq4_nl"};
const std::vector<std::string> kFloatTypes = {"f32", "f16", "bf16"};

// Runs a shell command, capturing stdout and stderr.
CommandResult run_command(const std::string& command) {
  CommandResult result;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.output.append(buffer, n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

Expected<ExportReport> export_gguf_to(const std::string& model, const std::string& out, const std::string& type = "",
                                      const std::string& tokenizer = "", std::vector<std::string>* log = nullptr) {
  ExportOptions o;
  o.model_path = model;
  o.output_path = out;
  o.type = type;
  o.tokenizer_path = tokenizer;
  o.force = true;
  if (log != nullptr) o.log = [log](const std::string& line) { log->push_back(line); };
  LB_ASSIGN_OR_RETURN(const ExportTarget* target, find_export_target("gguf"));
  return run_export(*target, o);
}

ModelWeights weights_of(const std::string& path) {
  auto source = open_model_source(path, {});
  EXPECT_TRUE(source.ok()) << source.status().message();
  if (!source.ok()) return {};
  return get(read_weights(**source));
}

// a and b bit for bit (float32 patterns); the message names the tensor and the first difference.
void expect_bits(const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) {
      FAIL() << what << ": element " << i << " differs: " << a[i] << " vs " << b[i];
    }
  }
}

// Every weight of b equals a's; with `repair`, a's q/k rows are re-paired from
// half-split to adjacent pairs first (heads from that config).
void expect_same_weights(const ModelWeights& a, const ModelWeights& b, const ModelConfig* repair = nullptr) {
  expect_bits(a.token_embedding, b.token_embedding, "token_embedding");
  expect_bits(a.output_norm, b.output_norm, "output_norm");
  expect_bits(a.lm_head.data, b.lm_head.data, "lm_head");
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (size_t i = 0; i < a.layers.size(); ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    const LayerWeights& x = a.layers[i];
    const LayerWeights& y = b.layers[i];
    expect_bits(x.attn_norm, y.attn_norm, p + "attn_norm");
    expect_bits(x.ffn_norm, y.ffn_norm, p + "ffn_norm");
    for (const char* s : {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}) {
      const Matrix& mx = linear_matrix(x, s);
      const Matrix& my = linear_matrix(y, s);
      const bool qk = std::string(s) == "q_proj" || std::string(s) == "k_proj";
      std::vector<float> data = mx.data, bias = mx.bias;
      if (repair != nullptr && qk) {
        const int heads = std::string(s) == "q_proj" ? repair->n_heads : repair->n_kv_heads;
        data = testing::permute_rope_rows(mx.data, heads, mx.cols, false);
        if (!bias.empty()) bias = testing::permute_rope_rows(mx.bias, heads, 1, false);
      }
      expect_bits(data, my.data, p + s);
      expect_bits(bias, my.bias, p + s + ".bias");
    }
  }
}

using testing::smollm2_shaped_config;

// Writes lowbit's own dequantization of every tensor of a GGUF file as F32
// tensors of the same names (the reference tests/python/check_gguf_export.py compares
// gguf-py's dequantization with).
Status write_lowbit_reference(const std::string& gguf_path, const std::string& reference_path) {
  LB_ASSIGN_OR_RETURN(GgufFile gguf, GgufFile::open(gguf_path));
  GgufWriter w;
  for (const GgufTensorInfo& t : gguf.tensors()) {
    LB_ASSIGN_OR_RETURN(std::vector<float> values, gguf.dequantize(t));
    LB_RETURN_IF_ERROR(w.add_f32_tensor(t.name, t.dims, values));
  }
  return w.write(reference_path);
}

// ------------------------------------------------------------------ streaming writer

TEST(GgufStreamWriter, StreamedFileEqualsTheInMemoryImage) {
  ScopedTempDir dir("gguf_stream");
  GgufWriter whole;
  GgufWriter layout;
  const std::vector<float> a = {1.0f, -2.0f, 3.5f};
  const std::vector<float> b(64, 0.25f);
  for (GgufWriter* w : {&whole, &layout}) {
    w->set_string("general.architecture", "llama");
    w->set_u32("llama.block_count", 1);
  }
  ASSERT_TRUE(whole.add_f32_tensor("a", {3}, a).ok());
  ASSERT_TRUE(whole.add_f32_tensor("b", {32, 2}, b).ok());
  ASSERT_TRUE(layout.declare_tensor("a", {3}, 0).ok());
  ASSERT_TRUE(layout.declare_tensor("b", {32, 2}, 0).ok());
  EXPECT_FALSE(layout.declare_tensor("a", {3}, 0).ok()) << "a name twice";
  EXPECT_FALSE(layout.declare_tensor("c", {0}, 0).ok()) << "an empty dimension";
  EXPECT_FALSE(layout.write(dir.file("x.gguf")).ok()) << "declared tensors have no bytes to write whole";
  auto writer = get(GgufStreamWriter::create(dir.file("s.gguf"), layout));
  auto bytes = [](const std::vector<float>& v) {
    return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(v.data()), v.size() * 4);
  };
  EXPECT_FALSE(writer.write_tensor("b", bytes(b)).ok()) << "out of declaration order";
  EXPECT_FALSE(writer.write_tensor("a", bytes(b)).ok()) << "wrong size";
  ASSERT_TRUE(writer.write_tensor("a", bytes(a)).ok());
  EXPECT_FALSE(writer.finish().ok()) << "a tensor missing";
  EXPECT_FALSE(fs::exists(dir.file("s.gguf")));
  ASSERT_TRUE(writer.write_tensor("b", bytes(b)).ok());
  ASSERT_TRUE(writer.finish().ok());
  EXPECT_FALSE(fs::exists(dir.file("s.gguf.tmp")));
  EXPECT_EQ(get(read_text_file(dir.file("s.gguf"))), whole.serialize());
}

TEST(GgufStreamWriter, AbandonedWriterLeavesNoFile) {
  ScopedTempDir dir("gguf_stream_abandon");
  GgufWriter layout;
  ASSERT_TRUE(layout.declare_tensor("a", {4}, 0).ok());
  {
    auto writer = get(GgufStreamWriter::create(dir.file("s.gguf"), layout));
    EXPECT_TRUE(fs::exists(dir.file("s.gguf.tmp")));
  }
  EXPECT_FALSE(fs::exists(dir.file("s.gguf.tmp")));
  EXPECT_FALSE(fs::exists(dir.file("s.gguf")));
}

// ------------------------------------------------------------------ exact rules

// Rows that exercise the groups: Gaussian, an all-zero group, a constant group,
// a huge outlier, all-negative and all-positive groups, and a partial last group
// of 128 when cols % 128 != 0.
std::vector<float> awkward_matrix(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> gauss(0.0f, 0.02f);
  std::vector<float> x(static_cast<size_t>(rows * cols));
  for (float& v : x) v = gauss(rng);
  for (int64_t c = 0; c < std::min<int64_t>(cols, 128); ++c) {
    x[static_cast<size_t>(c)] = 0.0f;                                          // row 0, group 0: zeros
    if (rows > 1) x[static_cast<size_t>(cols + c)] = 0.125f;                   // row 1: constant
    if (rows > 2) x[static_cast<size_t>(2 * cols + c)] = -std::fabs(x[static_cast<size_t>(2 * cols + c)]);
    if (rows > 3) x[static_cast<size_t>(3 * cols + c)] = std::fabs(x[static_cast<size_t>(3 * cols + c)]) + 0.5f;
  }
  if (rows > 4) x[static_cast<size_t>(4 * cols + cols / 2)] = 40.0f;  // one outlier
  return x;
}

// Converts a `format` tensor by its exact rule and checks the GGUF decode of the
// bytes against lowbit's dequantization, bit for bit.
void expect_exact_rule(const BlockFormat& f, uint32_t type_id, int64_t rows, int64_t cols) {
  const std::string what = f.name() + " [" + std::to_string(rows) + ", " + std::to_string(cols) + "]";
  const std::vector<float> x = awkward_matrix(rows, cols, static_cast<uint32_t>(cols));
  const QuantizedTensor q = get(quantize(f, x.data(), rows, cols));
  std::vector<float> lowbit(x.size());
  ASSERT_TRUE(dequantize(f, q, lowbit.data()).ok());
  const GgufExactRule* rule = find_gguf_exact_rule(&f);
  ASSERT_NE(rule, nullptr) << what;
  EXPECT_EQ(rule->type_id, type_id) << what;
  const std::vector<uint8_t> bytes = get(rule->convert(&f, q));
  const std::vector<float> gguf = get(gguf_decode(type_id, bytes, rows, cols));
  expect_bits(lowbit, gguf, what);
}

// int4_g128_asym keeps an FP16 scale and an FP16 minimum per 128 (the premise
// of the Q4_1 rule), and its dequantization is Q4_1's: bit for bit.
TEST(ExportGgufExactRules, Int4AsymmetricGroupsAreQ4_1) {
  const BlockFormat& f = *get(find_block_format("int4_g128_asym"));
  EXPECT_EQ(f.spec.scale_type, ScaleType::kFp16);
  EXPECT_TRUE(f.spec.asymmetric);
  EXPECT_EQ(f.layout.scale_bytes, 2);
  EXPECT_EQ(f.spec.group_cols, 128);
  for (int64_t cols : {32, 96, 128, 160, 576, 1536}) expect_exact_rule(f, 3, 7, cols);
}

TEST(ExportGgufExactRules, Int4SymmetricGroupsAreQ4_0) {
  const BlockFormat& f = *get(find_block_format("int4_g128"));
  EXPECT_EQ(f.spec.scale_type, ScaleType::kFp16);
  for (int64_t cols : {32, 96, 128, 576}) expect_exact_rule(f, 2, 7, cols);
}

// A format the table does not name but whose layout is Q8_0's (INT8, FP16 scale
// per 32) converts by layout.
TEST(ExportGgufExactRules, Int8Fp16GroupsOf32AreQ8_0) {
  BlockFormatSpec s;
  s.name = "int8_g32_fp16";
  s.element = "int8";
  s.granularity = ScaleGranularity::kGroup;
  s.group_cols = 32;
  s.scale_type = ScaleType::kFp16;
  const BlockFormat f = get(make_block_format(s));
  EXPECT_EQ(find_gguf_exact_rule(s.name), nullptr) << "not a named format";
  expect_exact_rule(f, 8, 5, 64);
}

TEST(ExportGgufExactRules, FloatStorageKeepsItsBytesAndOtherFormatsHaveNoRule) {
  EXPECT_EQ(find_gguf_exact_rule("fp32")->type_id, 0u);
  EXPECT_EQ(find_gguf_exact_rule("fp16")->type_id, 1u);
  EXPECT_EQ(find_gguf_exact_rule("bf16")->type_id, 30u);
  for (const char* name : {"int3_g128", "int2_g64", "nf4_g64", "nvfp4", "mxfp4", "int8_pc", "fp8_e4m3", "mxint8"}) {
    EXPECT_EQ(find_gguf_exact_rule(name), nullptr) << name;
  }
  EXPECT_EQ(find_gguf_exact_rule("no_such_format"), nullptr);
}

TEST(ExportGgufTypes, ShapeFallbacksFollowLlamaCpp) {
  auto for_row = [](const char* type, int64_t cols) { return gguf_type_for_row(*find_gguf_output_type(type), cols).name; };
  EXPECT_EQ(for_row("q4_K", 1536), "q4_K");
  EXPECT_EQ(for_row("q4_K", 576), "q5_0");
  EXPECT_EQ(for_row("q5_K", 576), "q5_1");
  EXPECT_EQ(for_row("q6_K", 576), "q8_0");
  EXPECT_EQ(for_row("q2_K", 576), "q4_0");
  EXPECT_EQ(for_row("q3_K", 64), "q4_0");
  EXPECT_EQ(for_row("q4_K", 172), "f16");
  EXPECT_EQ(for_row("q8_0", 172), "f16");
  EXPECT_EQ(for_row("f32", 172), "f32");
  for (const std::string& t : kIssueTypes) EXPECT_NE(find_gguf_output_type(t), nullptr) << t;
}

// ------------------------------------------------------------------ models

class ExportGguf : public ::testing::Test {
 protected:
  void SetUp() override {
    stories_ = testing::shared_path("models/stories260K/stories260K.gguf");
    text_ = testing::shared_path("data/tinystories/tinystories_validation_head.txt");
    if (stories_.empty() || text_.empty()) GTEST_SKIP() << "shared test material missing (stories260K, tinystories)";
  }

  // The SmolLM2-shaped model written as a Hugging Face folder (q/k half-split).
  std::string smollm2_hf(const ScopedTempDir& dir, const ModelConfig& c = smollm2_shaped_config()) {
    const std::string folder = dir.file("smollm2_hf");
    model_ = testing::make_random_model(c, 11);
    const testing::SpmVocab vocab = get(testing::read_gguf_spm_vocab(stories_));  // 512 pieces: c.vocab_size
    EXPECT_TRUE(testing::write_hf_checkpoint(model_, &vocab, folder).ok());
    return folder;
  }

  Expected<QuantizeReport> quantize(const std::string& model, const std::string& recipe_json, const std::string& out,
                                    bool calibrate = false) {
    LB_ASSIGN_OR_RETURN(Recipe recipe, parse_recipe(nlohmann::json::parse(recipe_json), "test recipe"));
    PipelineOptions o;
    o.model_path = model;
    o.output_path = out;
    if (calibrate) o.calib_path = text_;
    o.calibration.n_samples = 4;
    o.calibration.seq_len = 64;
    o.progress = false;
    return quantize_model(recipe, o);
  }

  double ppl(const std::string& model, const ScopedTempDir& dir) {
    const std::string json = dir.file("ppl.json");
    const CommandResult r =
        run_lowbit("ppl " + model + " --text " + text_ + " --ctx 128 --chunks 4 --no-progress --json " + json);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return nlohmann::json::parse(std::ifstream(json))["ppl"].get<double>();
  }

  std::string stories_, text_;
  LoadedModel model_;
};

constexpr const char* kW4g128Rtn =
    R"({"name": "w4g128-rtn", "default": {"method": "rtn", "format": "int4_g128_asym"}})";

// The keys llama.cpp reads, with its types and the config's values; the
// tokenizer keys as the source has them; tensors under llama.cpp's names.
TEST_F(ExportGguf, Stories260KMetadataTensorsAndWeights) {
  ScopedTempDir dir("export_meta");
  const std::string out = dir.file("s.gguf");
  const ExportReport r = get(export_gguf_to(stories_, out));
  EXPECT_EQ(r.tensors, 48u);
  EXPECT_EQ(r.converted_exactly, 48u);
  const GgufFile g = get(GgufFile::open(out));
  const GgufFile src = get(GgufFile::open(stories_));
  auto u32 = [&](const std::string& key) {
    const GgufValue* v = g.find(key);
    EXPECT_TRUE(v != nullptr && v->type == GgufValueType::UINT32) << key;
    return v != nullptr && v->is_integer() ? v->as_int() : -1;
  };
  auto f32 = [&](const std::string& key) {
    const GgufValue* v = g.find(key);
    EXPECT_TRUE(v != nullptr && v->type == GgufValueType::FLOAT32) << key;
    return v != nullptr ? v->as_double() : -1.0;
  };
  EXPECT_EQ(get(g.get_string("general.architecture")), "llama");
  EXPECT_EQ(get(g.get_string("general.name")), "llama");
  EXPECT_EQ(u32("general.alignment"), 32);
  EXPECT_EQ(u32("general.file_type"), 0);  // LLAMA_FTYPE_ALL_F32
  EXPECT_EQ(u32("llama.vocab_size"), 512);
  EXPECT_EQ(u32("llama.context_length"), 2048);
  EXPECT_EQ(u32("llama.embedding_length"), 64);
  EXPECT_EQ(u32("llama.block_count"), 5);
  EXPECT_EQ(u32("llama.feed_forward_length"), 172);
  EXPECT_EQ(u32("llama.attention.head_count"), 8);
  EXPECT_EQ(u32("llama.attention.head_count_kv"), 4);
  EXPECT_EQ(u32("llama.rope.dimension_count"), 8);
  EXPECT_FLOAT_EQ(static_cast<float>(f32("llama.attention.layer_norm_rms_epsilon")), 1e-5f);
  EXPECT_EQ(f32("llama.rope.freq_base"), 10000.0);
  EXPECT_EQ(g.find("llama.attention.key_length"), nullptr) << "head_dim = dim / n_heads needs no key_length";
  int tokenizer_keys = 0;
  for (const auto& [key, value] : src.metadata()) {
    if (!key.starts_with("tokenizer.")) continue;
    ++tokenizer_keys;
    const GgufValue* v = g.find(key);
    ASSERT_NE(v, nullptr) << key;
    EXPECT_EQ(v->type, value.type) << key;
  }
  EXPECT_EQ(tokenizer_keys, 9);
  EXPECT_EQ(get(g.get_string_array("tokenizer.ggml.tokens")), get(src.get_string_array("tokenizer.ggml.tokens")));
  for (const char* name : {"token_embd.weight", "output_norm.weight", "output.weight", "blk.4.attn_q.weight",
                           "blk.4.attn_k.weight", "blk.4.attn_v.weight", "blk.4.attn_output.weight",
                           "blk.4.ffn_gate.weight", "blk.4.ffn_up.weight", "blk.4.ffn_down.weight",
                           "blk.4.attn_norm.weight", "blk.4.ffn_norm.weight"}) {
    const GgufTensorInfo* t = g.find_tensor(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(t->dims, src.find_tensor(name)->dims) << name;
    EXPECT_EQ(t->type_id, 0u) << name;
  }
  expect_same_weights(weights_of(stories_), weights_of(out));
}

// A Hugging Face llama keeps q/k in half-split RoPE pairs; llama.cpp's llama
// rotates adjacent pairs: the export re-pairs the rows, so the GGUF holds the
// original adjacent-pair weights bit for bit, runs like the HF model, and carries
// the --tokenizer GGUF's vocabulary.
TEST_F(ExportGguf, HuggingFaceSmolLM2ShapedIsRepairedForLlamaRope) {
  ScopedTempDir dir("export_hf");
  const std::string hf = smollm2_hf(dir);
  const std::string out = dir.file("m.gguf");
  get(export_gguf_to(hf, out, "", stories_));
  const ModelWeights original = model_.weights;
  expect_same_weights(original, weights_of(out));
  const GgufFile g = get(GgufFile::open(out));
  EXPECT_EQ(g.find_tensor("output.weight"), nullptr) << "tied embeddings write no output.weight";
  EXPECT_EQ(g.get_int_or("llama.rope.dimension_count", 0), 64);
  const LoadedModel from_hf = get(load_hf_model(hf));
  const LoadedModel from_gguf = get(load_gguf_model(out));
  const std::vector<int32_t> tokens = {1, 45, 300, 7, 88, 511, 2};
  const std::vector<float> a = get(testing::forward_logits(from_hf, tokens));
  const std::vector<float> b = get(testing::forward_logits(from_gguf, tokens));
  EXPECT_LT(testing::max_abs_diff(a, b).value, 1e-4f);
}

// qwen2 rotates half-split pairs in llama.cpp too: rows stay, biases go along.
TEST_F(ExportGguf, Qwen2KeepsHalfSplitRowsAndQkvBiases) {
  ScopedTempDir dir("export_qwen2");
  ModelConfig c = smollm2_shaped_config();
  c.architecture = "qwen2";
  c.qkv_bias = true;
  c.dim = 128;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 32;
  c.ffn_dim = 256;
  const std::string hf = smollm2_hf(dir, c);
  const std::string out = dir.file("q.gguf");
  get(export_gguf_to(hf, out, "", stories_));
  const GgufFile g = get(GgufFile::open(out));
  EXPECT_EQ(get(g.get_string("general.architecture")), "qwen2");
  EXPECT_NE(g.find("qwen2.attention.head_count"), nullptr);
  EXPECT_NE(g.find_tensor("blk.1.attn_k.bias"), nullptr);
  expect_same_weights(weights_of(hf), weights_of(out));
}

// Llama-3 RoPE scaling becomes rope_freqs.weight, as llama.cpp's converter writes it.
TEST_F(ExportGguf, Llama3ScalingBecomesRopeFreqs) {
  ScopedTempDir dir("export_llama3");
  ModelConfig c = smollm2_shaped_config();
  c.dim = 128;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 32;
  c.ffn_dim = 256;
  c.rope_theta = 500000.0;
  c.rope_scaling = {.llama3 = true, .factor = 8.0, .low_freq_factor = 1.0, .high_freq_factor = 4.0,
                    .original_max_position = 16};
  const std::string hf = smollm2_hf(dir, c);
  const std::string out = dir.file("l3.gguf");
  get(export_gguf_to(hf, out, "", stories_));
  const GgufFile g = get(GgufFile::open(out));
  const GgufTensorInfo* freqs = g.find_tensor("rope_freqs.weight");
  ASSERT_NE(freqs, nullptr);
  const std::vector<float> f = get(g.dequantize(*freqs));
  ASSERT_EQ(f.size(), 16u);
  // Wavelengths from 2 pi (i = 0) up: at original_max_position 16 the band of
  // interpolation starts at 16 / 4 = 4, so every factor is in (1, 8], the longest exactly 8.
  for (size_t i = 0; i < f.size(); ++i) {
    EXPECT_GT(f[i], 1.0f) << i;
    EXPECT_LE(f[i], 8.0f) << i;
    if (i > 0) {
      EXPECT_GE(f[i], f[i - 1]) << i;
    }
  }
  EXPECT_EQ(f.back(), 8.0f);
  const std::vector<int32_t> tokens = {1, 45, 300, 7, 88, 511, 2, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
  const std::vector<float> a = get(testing::forward_logits(get(load_hf_model(hf)), tokens));
  const std::vector<float> b = get(testing::forward_logits(get(load_gguf_model(out)), tokens));
  EXPECT_LT(testing::max_abs_diff(a, b).value, 1e-4f);
}

// Issue 16: a w4g128-rtn lowbit file exports losslessly (int4_g128_asym -> Q4_1,
// the FP16 embedding -> F16, F32 where 32 does not divide the row): the
// dequantized weights are bit-identical and lowbit's PPL of both files agrees
// within 0.1% on the same tokens.
TEST_F(ExportGguf, W4g128RtnStoriesIsLossless) {
  ScopedTempDir dir("export_w4_stories");
  const std::string lowbit = dir.file("s.lowbit");
  const std::string out = dir.file("s.gguf");
  get(quantize(stories_, kW4g128Rtn, lowbit));
  std::vector<std::string> log;
  const ExportReport r = get(export_gguf_to(lowbit, out, "", "", &log));
  EXPECT_EQ(r.requantized, 0u);
  EXPECT_EQ(r.converted_exactly, r.tensors);
  EXPECT_EQ(log.size(), 5u) << "one note per down_proj (172 columns: F32)";
  const GgufFile g = get(GgufFile::open(out));
  EXPECT_EQ(g.find_tensor("blk.0.attn_q.weight")->type_id, 3u);    // Q4_1
  EXPECT_EQ(g.find_tensor("blk.0.ffn_down.weight")->type_id, 0u);  // F32
  EXPECT_EQ(g.get_int_or("general.file_type", -1), 3);              // LLAMA_FTYPE_MOSTLY_Q4_1
  EXPECT_EQ(g.get_int_or("general.quantization_version", -1), 2);
  expect_same_weights(weights_of(lowbit), weights_of(out));
  const double a = ppl(lowbit, dir), b = ppl(out, dir);
  EXPECT_LT(std::fabs(a - b) / a, 1e-3) << a << " vs " << b;
}

// The same on SmolLM2 shapes from a Hugging Face source: every linear is Q4_1
// (576 and 1536 are multiples of 32) and q/k are re-paired as quantized rows.
TEST_F(ExportGguf, W4g128RtnSmolLM2ShapedIsLossless) {
  ScopedTempDir dir("export_w4_smol");
  const std::string hf = smollm2_hf(dir);
  const std::string lowbit = dir.file("m.lowbit");
  const std::string out = dir.file("m.gguf");
  get(quantize(hf, kW4g128Rtn, lowbit));
  const ExportReport r = get(export_gguf_to(lowbit, out, "", stories_));
  EXPECT_EQ(r.requantized, 0u);
  const GgufFile g = get(GgufFile::open(out));
  for (const GgufTensorInfo& t : g.tensors()) {
    if (t.dims.size() == 2 && t.name != "token_embd.weight") {
      EXPECT_EQ(t.type_id, 3u) << t.name;
    }
  }
  const ModelConfig c = smollm2_shaped_config();
  expect_same_weights(weights_of(lowbit), weights_of(out), &c);
}

// A rotation without online transforms is folded into the weights: exportable.
TEST_F(ExportGguf, FoldedRotationExports) {
  ScopedTempDir dir("export_rot_folded");
  const std::string lowbit = dir.file("r.lowbit");
  const std::string out = dir.file("r.gguf");
  get(quantize(stories_,
               R"({"name": "rot-folded", "rotation": {"seed": 0, "online_down": false},
                   "default": {"method": "rtn", "format": "int4_g128_asym"}})",
               lowbit));
  get(export_gguf_to(lowbit, out));
  expect_same_weights(weights_of(lowbit), weights_of(out));
}

// ------------------------------------------------------------------ refusals

class ExportGgufRefusals : public ExportGguf {
 protected:
  // Runs `lowbit export ARGS` expecting exit code 1, one line naming every `needle`, and no output file.
  void expect_refused(const std::string& args, const std::vector<std::string>& needles, const std::string& out) {
    const CommandResult r = run_lowbit("export " + args);
    EXPECT_EQ(r.exit_code, 1) << args << "\n" << r.output;
    EXPECT_EQ(testing::count_lines(r.output), 1u) << r.output;
    EXPECT_EQ(r.output.rfind("lowbit: error: ", 0), 0u) << r.output;
    for (const std::string& n : needles) EXPECT_NE(r.output.find(n), std::string::npos) << n << " in " << r.output;
    if (!out.empty()) {
      EXPECT_FALSE(fs::exists(out + ".tmp")) << out;
    }
  }
};

TEST_F(ExportGgufRefusals, FormatWithoutGgufTypeNamesTensorAndFormat) {
  ScopedTempDir dir("export_refuse_fmt");
  const std::string lowbit = dir.file("n.lowbit");
  const std::string out = dir.file("n.gguf");
  get(quantize(stories_, R"({"name": "nvfp4", "default": {"method": "rtn", "format": "nvfp4"}})", lowbit));
  expect_refused(lowbit + " --to gguf -o " + out, {"'layers.0.q_proj'", "nvfp4", "--type"}, out);
  EXPECT_FALSE(fs::exists(out));
  expect_refused(lowbit + " --to gguf --exact --type q8_0 -o " + out, {"'layers.0.q_proj'", "nvfp4", "--exact"}, out);
  EXPECT_FALSE(fs::exists(out));
  expect_refused(lowbit + " --to gguf --type q9_9 -o " + out, {"--type q9_9", "q4_K"}, out);
  // int4_g128_asym has a rule, but not with EasyQuant's full-precision outliers beside the codes.
  const std::string easy = dir.file("e.lowbit");
  get(quantize(stories_, R"({"name": "easy", "default": {"method": "easyquant", "format": "int4_g128_asym",
                                                          "options": {"outlier_fraction": 0.005}}})",
               easy));
  expect_refused(easy + " --to gguf -o " + out, {"tensor 'layers.", "int4_g128_asym with outliers", "--type"}, out);
  EXPECT_FALSE(fs::exists(out));
  // f32 holds any dequantized value: --type f32 exports either file exactly, with no warning.
  for (const std::string& model : {lowbit, easy}) {
    std::vector<std::string> log;
    const ExportReport r = get(export_gguf_to(model, out, "f32", "", &log));
    EXPECT_EQ(r.requantized, 0u) << model;
    for (const std::string& line : log) EXPECT_EQ(line.find("warning"), std::string::npos) << line;
    expect_same_weights(weights_of(model), weights_of(out));
  }
}

TEST_F(ExportGgufRefusals, TransformsLlamaCppCannotRun) {
  ScopedTempDir dir("export_refuse_tf");
  const std::string out = dir.file("o.gguf");
  const std::string rot = dir.file("rot.lowbit");
  ASSERT_EQ(run_lowbit("quantize " + stories_ + " --recipe rot --no-progress -o " + rot).exit_code, 0);
  expect_refused(rot + " --to gguf -o " + out, {rot, "online Hadamard"}, out);
  const std::string act = dir.file("act.lowbit");
  ASSERT_EQ(run_lowbit("quantize " + stories_ + " --recipe w8a8 --calib " + text_ +
                       " --calib-samples 2 --calib-len 32 --no-progress -o " + act)
                .exit_code,
            0);
  expect_refused(act + " --to gguf --type q8_0 -o " + out, {"activation quantization"}, out);
  const std::string kv = dir.file("kv.lowbit");
  ASSERT_EQ(run_lowbit("quantize " + stories_ + " --recipe fp32 --kv k4v4-kivi --no-progress -o " + kv).exit_code, 0);
  expect_refused(kv + " --to gguf -o " + out, {"KV cache", "lowbit.kv"}, out);
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(ExportGgufRefusals, OutputPathsAndTokenizer) {
  ScopedTempDir dir("export_refuse_out");
  const std::string out = dir.file("s.gguf");
  std::ofstream(out) << "not a model";
  expect_refused(stories_ + " --to gguf -o " + out, {out, "--force"}, "");
  EXPECT_EQ(get(read_text_file(out)), "not a model") << "refused before any write";
  const CommandResult forced = run_lowbit("export " + stories_ + " --to gguf --force -o " + out);
  EXPECT_EQ(forced.exit_code, 0) << forced.output;
  EXPECT_TRUE(get(GgufFile::open(out)).find_tensor("token_embd.weight") != nullptr);
  expect_refused(stories_ + " --to gguf -o " + dir.path().string(), {"is a folder"}, "");
  expect_refused(stories_ + " --to gguf -o " + dir.file("no/such/folder.gguf"), {"does not exist"}, "");
  expect_refused(stories_ + " --to gguf --force -o " + stories_, {"is the model being exported"}, "");
  const std::string hf = smollm2_hf(dir);
  expect_refused(hf + " --to gguf -o " + dir.file("h.gguf"), {hf, "--tokenizer"}, dir.file("h.gguf"));
  expect_refused(hf + " --to gguf --tokenizer " + text_ + " -o " + dir.file("h.gguf"), {"--tokenizer"},
                 dir.file("h.gguf"));
}

// A tensor without an exact GGUF type is requantized into --type with a warning
// naming it and the error it adds. nvfp4 values into q8_0: a step of amax/127 per
// 32 gives an RMS error of about (amax/127)/sqrt(12), 0.4-0.6% of the RMS of a
// block whose amax is 2.5-3.5 RMS; into f16 (down_proj's 172 columns fall back)
// at most 2^-11 relative per element, about 2^-11/sqrt(3) = 2.8e-4 in RMS.
TEST_F(ExportGguf, RequantizationWarnsWithTheErrorItAdds) {
  ScopedTempDir dir("export_requant");
  const std::string lowbit = dir.file("n.lowbit");
  const std::string out = dir.file("n.gguf");
  get(quantize(stories_, R"({"name": "nvfp4", "default": {"method": "rtn", "format": "nvfp4"}})", lowbit));
  std::vector<std::string> log;
  const ExportReport r = get(export_gguf_to(lowbit, out, "q8_0", "", &log));
  EXPECT_EQ(r.requantized, 35u);  // the 7 linears of 5 layers; embedding (fp16) and lm_head exact
  int q8 = 0, f16 = 0;
  for (const std::string& line : log) {
    ASSERT_NE(line.find("lowbit: warning: tensor 'layers."), std::string::npos) << line;
    EXPECT_NE(line.find("(nvfp4)"), std::string::npos) << line;
    const size_t at = line.find("relative error ");
    ASSERT_NE(at, std::string::npos) << line;
    const double e = std::stod(line.substr(at + 15));
    if (line.find("into f16") != std::string::npos) {
      ++f16;
      EXPECT_NE(line.find("down_proj"), std::string::npos) << line;
      EXPECT_GT(e, 5e-5) << line;
      EXPECT_LT(e, 4e-4) << line;
    } else {
      ++q8;
      EXPECT_NE(line.find("into q8_0"), std::string::npos) << line;
      EXPECT_GT(e, 2e-3) << line;
      EXPECT_LT(e, 8e-3) << line;
    }
  }
  EXPECT_EQ(q8, 30);
  EXPECT_EQ(f16, 5);
}

// ------------------------------------------------------------------ gguf-py

// Exports stories260K and the SmolLM2-shaped model to every type issue 16 lists
// (and f32/f16/bf16); tests/python/check_gguf_export.py opens each file with the PyPI
// gguf package, checks the metadata keys llama.cpp reads, and requires
// gguf.quants.dequantize to equal lowbit's dequantization bit for bit for every
// tensor. A missing gguf package fails the test.
TEST_F(ExportGguf, GgufPyDequantizesEveryTypeLikeLowbit) {
  ScopedTempDir dir("export_gguf_py");
  const std::string hf = smollm2_hf(dir);
  nlohmann::json files = nlohmann::json::array();
  std::vector<std::string> types = kFloatTypes;
  types.insert(types.end(), kIssueTypes.begin(), kIssueTypes.end());
  for (const auto& [name, model] : {std::pair<std::string, std::string>{"stories", stories_}, {"smollm2", hf}}) {
    for (const std::string& type : types) {
      const std::string out = dir.file(name + "_" + type + ".gguf");
      const std::string ref = dir.file(name + "_" + type + ".ref.gguf");
      auto r = export_gguf_to(model, out, type, stories_);
      ASSERT_TRUE(r.ok()) << name << " " << type << ": " << r.status().message();
      ASSERT_TRUE(write_lowbit_reference(out, ref).ok()) << out;
      files.push_back({{"export", out}, {"reference", ref}});
    }
  }
  const std::string manifest = dir.file("manifest.json");
  std::ofstream(manifest) << nlohmann::json{{"files", files}, {"required_types", types}}.dump();
  const std::string script = testing::source_path("tests/python/check_gguf_export.py");
  const CommandResult r = run_command("python3 " + script + " " + manifest);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("all bit-exact"), std::string::npos) << r.output;
}

// A lowbit file whose linears are llama.cpp block types (the GGUF-native
// recipes) exports each such tensor verbatim: the GGUF tensor's bytes are the
// lowbit record's codes, and both files dequantize to the same weights.
TEST_F(ExportGguf, GgufNativeLowbitTensorsAreCopiedByteForByte) {
  ScopedTempDir dir("export_native");
  const std::string lowbit = dir.file("q.lowbit");
  const std::string out = dir.file("q.gguf");
  get(quantize(stories_,
               R"({"name": "q4_0-q4_K", "rules": [{"match": "down_proj", "method": "rtn", "format": "q4_K",
                   "fallback": ["q8_0", "fp16"]}],
                   "default": {"method": "rtn", "format": "q4_0"}})",
               lowbit));
  const ExportReport r = get(export_gguf_to(lowbit, out));
  EXPECT_EQ(r.requantized, 0u);
  const LowbitModelFile file = get(LowbitModelFile::open(lowbit));
  const GgufFile g = get(GgufFile::open(out));
  const GgufTensorInfo* t = g.find_tensor("blk.0.attn_q.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->type_id, 2u);  // Q4_0
  const QuantizedWeight q = get(file.read("layers.0.q_proj", {t->dims[1], t->dims[0]}));
  ASSERT_EQ(q.format, "q4_0");
  ASSERT_EQ(t->n_bytes, q.tensor.codes.size());
  EXPECT_EQ(std::memcmp(t->data, q.tensor.codes.data(), t->n_bytes), 0);
  EXPECT_EQ(g.find_tensor("blk.0.ffn_down.weight")->type_id, 1u);  // 172 columns: neither q4_K nor q8_0, F16
  expect_same_weights(weights_of(lowbit), weights_of(out));
}

// The real SmolLM2-135M (scripts/fetch_model.sh; skipped with a message when it
// is not in $LOWBIT_CACHE): w4g128-rtn exported to GGUF is lossless, every
// linear Q4_1 with the group's FP16 scale and minimum over its four blocks of 32,
// and lowbit's PPL of both files is equal within 0.1% on the same tokens.
TEST_F(ExportGguf, SmolLM2W4g128RtnIsLosslessWithEqualPpl) {
  LB_REQUIRE_SMOLLM2(smol);
  const std::string wiki = testing::shared_path("data/wikitext-2-raw/wiki.test.raw");
  if (wiki.empty()) GTEST_SKIP() << "shared WikiText-2 missing";
  ScopedTempDir dir("export_smollm2");
  const std::string lowbit = dir.file("smol_w4.lowbit");
  const std::string out = dir.file("smol_w4.gguf");
  const CommandResult q = run_lowbit("quantize " + smol + " --recipe w4g128-rtn --no-progress -o " + lowbit);
  ASSERT_EQ(q.exit_code, 0) << q.output;
  const CommandResult e = run_lowbit("export " + lowbit + " --to gguf --exact -o " + out);
  ASSERT_EQ(e.exit_code, 0) << e.output;
  const GgufFile g = get(GgufFile::open(out));
  for (const GgufTensorInfo& t : g.tensors()) {
    if (t.dims.size() == 2 && t.name != "token_embd.weight") {
      EXPECT_EQ(t.type_id, 3u) << t.name;  // Q4_1
    }
  }
  expect_same_weights(weights_of(lowbit), weights_of(out));
  auto ppl_of = [&](const std::string& model) {
    const std::string json = dir.file("ppl.json");
    const CommandResult r = run_lowbit("ppl " + model + " --text " + wiki +
                                       " --ctx 512 --chunks 4 --no-progress --json " + json);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return nlohmann::json::parse(std::ifstream(json))["ppl"].get<double>();
  };
  const double a = ppl_of(lowbit), b = ppl_of(out);
  EXPECT_LT(std::fabs(a - b) / a, 1e-3) << a << " vs " << b;
}

}  // namespace
}  // namespace lowbit
