// The runtime loader (model/runtime_model.h) on stories260K lowbit files: every
// quantized linear is packed straight from its stored codes (no FP32 copy held),
// the embedding stays packed and a tied head shares it, the model holds about the
// file's stored bytes, the logits equal those of the reference load path
// (read every piece in FP32, LlamaModel::create, attach_quantized_linears) bit
// for bit, and a non-finite stored scale is an error naming the tensor.
#include <gtest/gtest.h>

#include "io/gguf.h"
#include "model/loader.h"
#include "model/lowbit_file.h"
#include "model/packed_linear.h"
#include "model/quantized_linear.h"
#include "model/runtime_model.h"
#include "model_writers.h"
#include "pipeline/quantize_pipeline.h"
#include "test_quantize_util.h"
#include "test_util.h"

namespace lowbit {
namespace {

using testing::get;

std::string stories_gguf() { return testing::shared_path("models/stories260K/stories260K.gguf"); }

// stories260K written by hand as a lowbit file with tied embeddings: the embedding
// in FP16, every linear in int4_g128_asym (RTN), norms in FP32. corrupt_scale:
// layers.0.q_proj's first scale becomes FP16 +inf.
void write_tied_file(const std::string& path, bool corrupt_scale) {
  const LoadedModel fp = get(load_model(stories_gguf(), {}));
  LowbitFileInfo info;
  info.config = fp.config;
  info.config.tied_embeddings = true;
  LowbitFileWriter w = get(LowbitFileWriter::create(path, info, nullptr));
  const ModelConfig& c = info.config;
  auto add = [&](const std::string& name, const std::string& format, const std::vector<float>& data, int64_t rows,
                 int64_t cols) {
    QuantizedWeight q;
    q.format = format;
    q.tensor = get(quantize_matrix(format, data.data(), rows, cols));
    if (corrupt_scale && name == "layers.0.q_proj") q.tensor.scales[0] = 0x00, q.tensor.scales[1] = 0x7C;
    ASSERT_TRUE(w.add(name, {rows, cols}, q, "rtn").ok()) << name;
  };
  add("token_embedding", "fp16", fp.weights.token_embedding, c.vocab_size, c.dim);
  for (int i = 0; i < c.n_layers; ++i) {
    const LayerWeights& l = fp.weights.layers[i];
    const std::string p = fmt::format("layers.{}.", i);
    ASSERT_TRUE(w.add_fp32(p + "attn_norm", {c.dim}, l.attn_norm.data()).ok());
    for (std::string_view s : DecoderBlock::kLinearSuffixes) {
      const Matrix& m = linear_matrix(l, s);
      add(p + std::string(s), "int4_g128_asym", m.data, m.rows, m.cols);
    }
    ASSERT_TRUE(w.add_fp32(p + "ffn_norm", {c.dim}, l.ffn_norm.data()).ok());
  }
  ASSERT_TRUE(w.add_fp32("output_norm", {c.dim}, fp.weights.output_norm.data()).ok());
  ASSERT_TRUE(w.finish().ok());
}

// The reference load path: every piece in FP32, then the quantized linears attached.
LlamaModel reference_model(const ModelSource& source) {
  LoadedModel loaded = get(read_model(source));
  LlamaModel model = get(LlamaModel::create(loaded.config, std::move(loaded.weights)));
  EXPECT_TRUE(attach_quantized_linears(model, std::move(loaded.quantized_linears)).ok());
  return model;
}

// Logits of a batched 9-token prompt (the GEMM path) followed by 6 one-token
// decode steps (the GEMV path): [9 + 6, vocab].
std::vector<float> logits(const LlamaModel& model) {
  const std::vector<int32_t> tokens = {1, 403, 407, 261, 378, 302, 395, 261, 445, 300, 9, 73, 500, 2, 17};
  const int vocab = model.config().vocab_size, prompt = 9;
  std::vector<float> out(tokens.size() * vocab);
  auto cache = model.make_fp32_cache(static_cast<int>(tokens.size()));
  ThreadPool pool(2);
  EXPECT_TRUE(model.forward(tokens.data(), prompt, 0, *cache, out.data(), pool).ok());
  for (size_t t = prompt; t < tokens.size(); ++t) {
    EXPECT_TRUE(model.forward(&tokens[t], 1, static_cast<int>(t), *cache, out.data() + t * vocab, pool).ok());
  }
  return out;
}

void expect_same_logits(const LlamaModel& a, const LlamaModel& b) {
  const std::vector<float> x = logits(a), y = logits(b);
  ASSERT_EQ(x.size(), y.size());
  size_t n_diff = 0, first = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (x[i] != y[i] && n_diff++ == 0) first = i;
  }
  EXPECT_EQ(n_diff, 0u) << "first difference at " << first << ": " << x[first] << " vs " << y[first];
}

uint64_t stored_bytes(const ModelSource& source) {
  uint64_t bytes = 0;
  for (const StoredTensor& t : source.summary().tensors) bytes += t.n_bytes;
  return bytes;
}

// Every decoder linear runs packed and holds exactly its packed matrix (+ bias):
// a kept FP32 copy would be a DenseLinear / QuantizedLinear or show in weight_bytes().
uint64_t expect_packed_linears(LlamaModel& model) {
  uint64_t bytes = 0;
  for (const std::string& name : model.linear_names()) {
    if (name == "lm_head") continue;
    const auto* p = dynamic_cast<const PackedLinear*>(model.find_linear(name));
    EXPECT_NE(p, nullptr) << name << " is " << model.find_linear(name)->describe();
    if (p == nullptr) continue;
    EXPECT_EQ(p->packed().kind, PackedKind::kLut4) << name;
    EXPECT_EQ(p->weight_bytes(), p->packed().storage_bytes()) << name;
    bytes += p->weight_bytes();
  }
  return bytes;
}

uint64_t norm_bytes(const ModelConfig& c) { return 4ull * c.dim * (2ull * c.n_layers + 1); }

TEST(RuntimeModel, TiedHeadSharesThePackedEmbeddingAndLogitsMatchTheReferencePath) {
  if (stories_gguf().empty()) GTEST_SKIP() << "shared test material missing (stories260K)";
  testing::ScopedTempDir dir("runtime_tied");
  const std::string path = dir.file("tied.lowbit");
  write_tied_file(path, false);
  auto source = get(open_model_source(path, {}));
  ASSERT_TRUE(source->has_stored_tensors());
  AttachReport report;
  LlamaModel model = get(build_runtime_model(*source, {}, &report));
  const ModelConfig& c = model.config();
  EXPECT_TRUE(report.dequantized.empty());

  const TokenEmbedding& e = model.token_embedding();
  ASSERT_NE(e.packed_table(), nullptr);
  EXPECT_EQ(e.packed_table()->kind, PackedKind::kFp16);
  EXPECT_EQ(e.packed_table()->codes.size(), 2ull * c.vocab_size * c.dim);  // dim 64: no column padding
  EXPECT_EQ(e.bytes(), e.packed_table()->storage_bytes());
  const auto* head = dynamic_cast<const PackedLinear*>(model.find_linear("lm_head"));
  ASSERT_NE(head, nullptr);
  EXPECT_EQ(head->shared_packed().get(), e.packed_table().get()) << "the tied head holds its own copy";

  const uint64_t linears = expect_packed_linears(model);
  EXPECT_EQ(model.weight_bytes(), linears + e.bytes() + norm_bytes(c));  // the head counted once, with the table
  // Packing pads columns to 32 and regroups scales; nothing else is held.
  const uint64_t file = stored_bytes(*source);
  EXPECT_LE(model.weight_bytes(), file * 115 / 100) << "stored " << file;
  std::printf("tied stories260K: held %llu bytes, stored %llu\n", static_cast<unsigned long long>(model.weight_bytes()),
              static_cast<unsigned long long>(file));

  expect_same_logits(model, reference_model(*source));
}

TEST(RuntimeModel, PipelineFileRunsPackedWithTheReferenceLogits) {
  if (stories_gguf().empty()) GTEST_SKIP() << "shared test material missing (stories260K)";
  testing::ScopedTempDir dir("runtime_pipeline");
  PipelineOptions o;
  o.model_path = stories_gguf();
  o.output_path = dir.file("s.lowbit");
  o.progress = false;
  ASSERT_TRUE(quantize_model(get(load_recipe("w4g128-rtn")), o).ok());
  auto source = get(open_model_source(o.output_path, {}));
  AttachReport report;
  LlamaModel model = get(build_runtime_model(*source, {}, &report));
  const ModelConfig& c = model.config();
  ASSERT_FALSE(c.tied_embeddings);
  int n_packed = 0;
  for (const auto& [kernel, n] : report.packed) n_packed += n;
  EXPECT_EQ(n_packed, 7 * c.n_layers + 1);  // + lm_head (FP16)
  EXPECT_TRUE(report.dequantized.empty());
  ASSERT_NE(model.token_embedding().packed_table(), nullptr);  // the recipe keeps the embedding in FP16
  const uint64_t linears = expect_packed_linears(model);
  const uint64_t head = model.find_linear("lm_head")->weight_bytes();
  EXPECT_EQ(model.weight_bytes(), linears + head + model.token_embedding().bytes() + norm_bytes(c));
  EXPECT_LE(model.weight_bytes(), stored_bytes(*source) * 115 / 100);

  expect_same_logits(model, reference_model(*source));

  // The reference runtime on request: dequantized linears and an FP32 table.
  LlamaModel dense = get(build_runtime_model(*source, {.packed = false}));
  EXPECT_NE(dynamic_cast<const QuantizedLinear*>(dense.find_linear("layers.0.q_proj")), nullptr);
  EXPECT_EQ(dense.token_embedding().packed_table(), nullptr);
}

TEST(RuntimeModel, NonFiniteStoredScaleIsAnErrorNamingTheTensor) {
  if (stories_gguf().empty()) GTEST_SKIP() << "shared test material missing (stories260K)";
  testing::ScopedTempDir dir("runtime_bad_scale");
  const std::string path = dir.file("bad.lowbit");
  write_tied_file(path, true);
  auto source = get(open_model_source(path, {}));
  auto model = build_runtime_model(*source, {});
  ASSERT_FALSE(model.ok());
  const std::string message = model.status().message();
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("layers.0.q_proj"), std::string::npos) << message;
  EXPECT_NE(message.find("not finite"), std::string::npos) << message;
}

}  // namespace
}  // namespace lowbit
