// Recipes with llama.cpp's block types through `quantize_model` into a .lowbit
// file, and back:
//  - a random Llama whose rows are whole 256-blocks (dim 256, ffn 512) with the
//    mixed recipe of issue 16 (GPTQ Q4_K, GPTQ Q6_K on v/down, RTN Q8_0 tables):
//    every tensor in its type, no fallback, the stored bytes decoded by the GGUF
//    reader's decoder equal to what the loader hands the runtime, GPTQ's output
//    error below RTN's on the same inputs;
//  - data-free RTN: the file holds gguf_quantize's bytes of the source weights, and
//    the reloaded model's logits equal those of the model quantized in memory;
//  - lm_head weighted by the importance of its input (diag H after the last layer);
//  - stories260K (dim 64, ffn 172): the fallbacks of the built-in q4_K-gptq
//    recipe, reported per tensor; AWQ on Q4_0; a rule without fallback refused
//    naming tensor, type and shape, with no file left behind.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>

#include "formats/gguf_blocks.h"
#include "io/ggml_types.h"
#include "model/loader.h"
#include "model/lowbit_file.h"
#include "model_writers.h"
#include "pipeline/quantize_pipeline.h"
#include "quant/weight_format.h"
#include "test_quantize_util.h"
#include "test_util.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::get;

const char* const kLinears[] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

std::map<std::string, Matrix*> layer_matrices(LayerWeights& l) {
  return {{"q_proj", &l.q_proj},       {"k_proj", &l.k_proj},   {"v_proj", &l.v_proj},
          {"o_proj", &l.o_proj},       {"gate_proj", &l.gate_proj}, {"up_proj", &l.up_proj},
          {"down_proj", &l.down_proj}};
}

const ModuleReport* find_module(const QuantizeReport& r, const std::string& name) {
  for (const ModuleReport& m : r.modules) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

// Dequantizes a stored GGUF-typed tensor with the GGUF reader's decoder (io/ggml_types.h).
std::vector<float> read_with_gguf_decoder(const QuantizedWeight& q) {
  const GgufBlockType* t = find_gguf_block_type(q.format);
  EXPECT_NE(t, nullptr) << q.format;
  const GgmlTypeTraits* reader = t != nullptr ? find_ggml_type(t->type_id) : nullptr;
  EXPECT_NE(reader, nullptr) << q.format;
  std::vector<float> out(static_cast<size_t>(q.rows() * q.cols()));
  if (reader != nullptr) reader->dequantize(q.tensor.codes.data(), out.data(), q.rows() * q.cols() / t->block_size);
  return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// A random untied Llama with a tokenizer, written as a Hugging Face folder, whose
// linears and tables all have rows of whole 256-blocks.
class GgufRecipeOnRandomModel : public ::testing::Test {
 protected:
  void SetUp() override {
    text_ = testing::shared_path("data/tinystories/tinystories_validation_head.txt");
    if (text_.empty()) GTEST_SKIP() << "shared test material missing (tinystories)";
    ModelConfig c;
    c.n_layers = 2;
    c.dim = 256;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 64;
    c.ffn_dim = 512;
    c.vocab_size = static_cast<int>(testing::make_test_spm_vocab().pieces.size());
    c.max_seq_len = 128;
    c.tied_embeddings = false;
    source_ = testing::make_random_model(c, 21);
    const testing::SpmVocab vocab = testing::make_test_spm_vocab();
    model_ = dir_.file("model");
    ASSERT_TRUE(testing::write_hf_checkpoint(source_, &vocab, model_).ok());
  }

  Expected<QuantizeReport> run(const std::string& recipe_json, const std::string& out, bool calibrate) {
    LB_ASSIGN_OR_RETURN(Recipe recipe, parse_recipe(json::parse(recipe_json), "test.json"));
    PipelineOptions o;
    o.model_path = model_;
    o.output_path = dir_.file(out);
    if (calibrate) o.calib_path = text_;
    o.calibration.n_samples = 8;
    o.calibration.seq_len = 64;
    o.calibration.seed = 3;
    o.progress = false;
    return quantize_model(recipe, o);
  }

  testing::ScopedTempDir dir_{"quantize_gguf"};
  std::string model_, text_;
  LoadedModel source_;
};

// The recipe of issue 16, with `method` for the linears.
std::string mixed_recipe(const std::string& method) {
  return fmt::format(R"({{"name": "mixed-{0}",
      "rules": [{{"match": "v_proj|down_proj", "method": "{0}", "format": "q6_K"}},
                {{"match": "^(token_embedding|lm_head)$", "method": "rtn", "format": "q8_0"}}],
      "default": {{"method": "{0}", "format": "q4_K"}}}})",
                     method);
}

TEST_F(GgufRecipeOnRandomModel, MixedGptqRecipeStoresEveryTypeExactly) {
  const QuantizeReport gptq = get(run(mixed_recipe("gptq"), "g.lbq", true));
  const QuantizeReport rtn = get(run(mixed_recipe("rtn"), "r.lbq", true));
  EXPECT_TRUE(report_json(gptq)["fallbacks"].empty()) << report_json(gptq)["fallbacks"].dump();
  const LowbitModelFile file = get(LowbitModelFile::open(dir_.file("g.lbq")));
  LoadedModel loaded = get(load_model(dir_.file("g.lbq"), {}));
  const ModelConfig c = loaded.config;
  for (int i = 0; i < c.n_layers; ++i) {
    const auto matrices = layer_matrices(loaded.weights.layers[static_cast<size_t>(i)]);
    for (const char* suffix : kLinears) {
      const std::string name = fmt::format("layers.{}.{}", i, suffix);
      SCOPED_TRACE(name);
      const std::string want_format = std::string(suffix) == "v_proj" || std::string(suffix) == "down_proj" ? "q6_K" : "q4_K";
      const ModuleReport* m = find_module(gptq, name);
      ASSERT_NE(m, nullptr);
      EXPECT_EQ(m->format, want_format);
      EXPECT_EQ(m->method, "gptq");
      ASSERT_TRUE(m->output_rel_error.has_value());
      EXPECT_LT(*m->output_rel_error, 0.05);  // 4-bit K-quants: a few 1e-3 measured
      const Matrix& w = *matrices.at(suffix);
      const QuantizedWeight q = get(file.read(name, {w.rows, w.cols}));
      EXPECT_EQ(q.format, want_format);
      EXPECT_EQ(*file.record_field(name, "gguf"),
                json({{"type", find_gguf_block_type(want_format)->type_id},
                      {"block_size", find_gguf_block_type(want_format)->block_size},
                      {"bytes_per_block", find_gguf_block_type(want_format)->bytes_per_block}}));
      // The GGUF reader's decoder, the file's dequantization and the loaded weights agree bit for bit.
      const std::vector<float> decoded = read_with_gguf_decoder(q);
      EXPECT_TRUE(same_bits(decoded, get(file.read_fp32(name, {w.rows, w.cols}))));
      EXPECT_TRUE(same_bits(decoded, w.data));
      EXPECT_EQ(loaded.quantized_linears.at(name).tensor.codes, q.tensor.codes);
    }
  }
  for (const char* table : {"token_embedding", "lm_head"}) {
    EXPECT_EQ(find_module(gptq, table)->format, "q8_0") << table;
    EXPECT_EQ(find_module(gptq, table)->method, "rtn") << table;
  }
  // Layer 0's q/k/v read the embeddings in both runs: same H, so GPTQ's objective compares.
  for (const char* name : {"layers.0.q_proj", "layers.0.k_proj", "layers.0.v_proj"}) {
    EXPECT_LT(*find_module(gptq, name)->output_rel_error, *find_module(rtn, name)->output_rel_error) << name;
  }
  // The loaded model runs and stays near the FP32 one.
  const std::vector<int32_t> tokens = {1, 40, 77, 120, 9, 200, 31, 64};
  const std::vector<float> want = get(testing::forward_logits(source_, tokens));
  const std::vector<float> got = get(testing::forward_logits(loaded, tokens));
  double diff = 0.0, scale = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_TRUE(std::isfinite(got[i])) << i;
    diff += std::fabs(got[i] - want[i]);
    scale += std::fabs(want[i]);
  }
  EXPECT_LT(diff, 0.1 * scale) << "mean |logit difference| " << diff / want.size() << " of mean |logit| "
                               << scale / want.size();
}

TEST_F(GgufRecipeOnRandomModel, RtnFileHoldsTheQuantizersBytesAndTheInMemoryLogits) {
  ASSERT_TRUE(run(mixed_recipe("rtn"), "r.lbq", false).ok());
  const LowbitModelFile file = get(LowbitModelFile::open(dir_.file("r.lbq")));
  LoadedModel reference = get(load_model(model_, {}));  // as the pipeline reads it (q/k rows in half-split order)
  const ModelConfig& c = reference.config;
  auto quantize_in_memory = [&](const std::string& name, std::vector<float>& data, int64_t rows, int64_t cols,
                                const char* format) {
    SCOPED_TRACE(name);
    const QuantizedTensor want = get(gguf_quantize(*find_gguf_block_type(format), data.data(), rows, cols));
    const QuantizedWeight stored = get(file.read(name, {rows, cols}));
    EXPECT_EQ(stored.format, format);
    EXPECT_EQ(stored.tensor.codes, want.codes);
    ASSERT_TRUE(gguf_dequantize(*find_gguf_block_type(format), want, data.data()).ok());
  };
  for (int i = 0; i < c.n_layers; ++i) {
    LayerWeights& l = reference.weights.layers[static_cast<size_t>(i)];
    for (const auto& [suffix, m] : layer_matrices(l)) {
      quantize_in_memory(fmt::format("layers.{}.{}", i, suffix), m->data, m->rows, m->cols,
                         suffix == "v_proj" || suffix == "down_proj" ? "q6_K" : "q4_K");
    }
  }
  quantize_in_memory("token_embedding", reference.weights.token_embedding, c.vocab_size, c.dim, "q8_0");
  quantize_in_memory("lm_head", reference.weights.lm_head.data, c.vocab_size, c.dim, "q8_0");
  const std::vector<int32_t> tokens = {1, 40, 77, 120, 9, 200, 31, 64, 5, 17};
  const std::vector<float> want = get(testing::forward_logits(reference, tokens));
  const std::vector<float> got = get(testing::forward_logits(get(load_model(dir_.file("r.lbq"), {})), tokens));
  const testing::MaxDiff d = testing::max_abs_diff(want, got);
  EXPECT_EQ(d.value, 0.0f) << "worst logit " << d.index;
}

TEST_F(GgufRecipeOnRandomModel, LmHeadWeightedByItsInputImportance) {
  const std::string weighted = R"({"name": "head",
      "rules": [{"match": "^lm_head$", "method": "rtn", "format": "q4_K", "options": {"importance": true}}],
      "default": {"method": "rtn", "format": "q8_0"}})";
  const std::string plain = R"({"name": "head",
      "rules": [{"match": "^lm_head$", "method": "rtn", "format": "q4_K"}],
      "default": {"method": "rtn", "format": "q8_0"}})";
  auto refused = run(weighted, "x.lbq", false);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("--calib"), std::string::npos) << refused.status().message();
  const QuantizeReport r = get(run(weighted, "w.lbq", true));
  const ModuleReport* head = find_module(r, "lm_head");
  ASSERT_NE(head, nullptr);
  ASSERT_TRUE(head->output_rel_error.has_value());  // H of the head's input was collected
  EXPECT_GT(*head->output_rel_error, 0.0);
  EXPECT_LT(*head->output_rel_error, 0.05);
  ASSERT_TRUE(run(plain, "p.lbq", false).ok());
  const std::vector<int64_t> shape = {source_.config.vocab_size, source_.config.dim};
  const QuantizedWeight a = get(get(LowbitModelFile::open(dir_.file("w.lbq"))).read("lm_head", shape));
  const QuantizedWeight b = get(get(LowbitModelFile::open(dir_.file("p.lbq"))).read("lm_head", shape));
  EXPECT_NE(a.tensor.codes, b.tensor.codes);  // the weighting changed the search
}

class GgufRecipeOnStories : public testing::StoriesPipelineTest {};

TEST_F(GgufRecipeOnStories, BuiltinQ4KFallsBackWhereRowsAreNotWholeBlocks) {
  testing::ScopedTempDir dir("gguf_stories");
  const QuantizeReport r = get(quantize_model(get(load_recipe("q4_K-gptq")), pipeline_options(dir.file("s.lbq"))));
  // dim 64: q4_K -> q5_0, q6_K -> q8_0; ffn 172 (not whole 32-blocks): down_proj -> fp16.
  const std::map<std::string, std::pair<std::string, std::string>> want = {
      {"q_proj", {"q5_0", "q4_K"}},   {"k_proj", {"q5_0", "q4_K"}},  {"v_proj", {"q8_0", "q6_K"}},
      {"o_proj", {"q5_0", "q4_K"}},   {"gate_proj", {"q5_0", "q4_K"}}, {"up_proj", {"q5_0", "q4_K"}},
      {"down_proj", {"fp16", "q6_K"}}};
  const json j = report_json(r);
  ASSERT_EQ(j["fallbacks"].size(), 5u * 7);
  for (const json& f : j["fallbacks"]) {
    const std::string name = f["name"];
    const auto& [to, from] = want.at(name.substr(name.rfind('.') + 1));
    EXPECT_EQ(f["to"], to) << name;
    EXPECT_EQ(f["from"], from) << name;
    const ModuleReport* m = find_module(r, name);
    EXPECT_EQ(m->format, to);
    EXPECT_EQ(m->method, to == "fp16" ? "none" : "gptq") << name;
  }
  EXPECT_EQ(find_module(r, "token_embedding")->format, "q8_0");
  EXPECT_TRUE(find_module(r, "token_embedding")->fallback_from.empty());
  const LoadedModel loaded = get(load_model(dir.file("s.lbq"), {}));
  EXPECT_EQ(loaded.quantized_linears.at("layers.2.down_proj").format, "fp16");
  EXPECT_EQ(loaded.quantized_linears.at("layers.2.up_proj").format, "q5_0");
  const std::vector<float> logits = get(testing::forward_logits(loaded, {1, 403, 407, 261, 378}));
  for (float v : logits) ASSERT_TRUE(std::isfinite(v));
}

TEST_F(GgufRecipeOnStories, AwqOnQ4_0FoldsTheGroupsThatFit) {
  testing::ScopedTempDir dir("gguf_awq");
  const QuantizeReport r = get(quantize_model(get(load_recipe("q4_0-awq")), pipeline_options(dir.file("a.lbq"))));
  int with_alpha = 0;
  for (const ModuleReport& m : r.modules) {
    if (m.awq_alpha) {
      ++with_alpha;
      EXPECT_EQ(m.format, "q4_0") << m.name;
      EXPECT_TRUE(m.output_rel_error.has_value()) << m.name;
    }
  }
  EXPECT_EQ(with_alpha, 5 * 6);  // every linear but down_proj (172 wide: FP16, nothing to fold)
  EXPECT_EQ(find_module(r, "layers.0.down_proj")->format, "fp16");
  EXPECT_TRUE(get(load_model(dir.file("a.lbq"), {})).quantized_linears.count("layers.4.q_proj"));
}

TEST_F(GgufRecipeOnStories, ARuleWithoutFallbackIsRefusedByName) {
  testing::ScopedTempDir dir("gguf_refused");
  const Recipe strict =
      get(parse_recipe(json::parse(R"({"name": "strict", "default": {"method": "rtn", "format": "q4_K"}})"), "s.json"));
  auto r = quantize_model(strict, pipeline_options(dir.file("x.lbq"), false));
  ASSERT_FALSE(r.ok());
  for (const char* part : {"layers.0.q_proj", "q4_K", "[64, 64]"}) {
    EXPECT_NE(r.status().message().find(part), std::string::npos) << part << ": " << r.status().message();
  }
  EXPECT_FALSE(fs::exists(dir.file("x.lbq")));
  EXPECT_FALSE(fs::exists(dir.file("x.lbq.tmp")));
}

}  // namespace
}  // namespace lowbit
