// `ppl --arith llamacpp` (model/llamacpp_linear.h): a linear over a Q4_1 weight
// against llama.cpp's block formula written out from the block bytes (the Q8_1
// min term from the stored sum s), the checks that refuse a layer, which GGUF
// types a source reports, and on stories260K exported to q4_0 / q4_K: the flag
// changes the logits and the PPL of quantized files and leaves the F32 file's
// bit for bit; the CLI end to end (an FP16 KV cache by default).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include "core/half.h"
#include "formats/ggml_activations.h"
#include "formats/gguf_blocks.h"
#include "model/llamacpp_linear.h"
#include "model/loader.h"
#include "model/runtime_model.h"
#include "model_writers.h"
#include "pipeline/export.h"
#include "test_util.h"

namespace lowbit {
namespace {

using testing::ScopedTempDir;

std::vector<float> gaussian(size_t n, uint64_t seed, float sigma = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// A GGUF-typed weight [rows, cols]: its block bytes, the dequantized matrix and
// the storage record attach_llamacpp_arith takes.
struct GgufWeight {
  std::vector<uint8_t> bytes;
  Matrix dense;
  LinearGgmlStorage storage;
};

GgufWeight make_weight(const std::string& type_name, int64_t rows, int64_t cols, uint64_t seed) {
  GgufWeight w;
  const GgufBlockType* type = find_gguf_block_type(type_name);
  EXPECT_NE(type, nullptr) << type_name;
  const std::vector<float> x = gaussian(static_cast<size_t>(rows * cols), seed, 0.05f);
  auto q = gguf_quantize(*type, x.data(), rows, cols);
  EXPECT_TRUE(q.ok()) << q.status().message();
  w.bytes = q->codes;
  w.dense.rows = rows;
  w.dense.cols = cols;
  w.dense.data.resize(static_cast<size_t>(rows * cols));
  EXPECT_TRUE(gguf_dequantize(*type, *q, w.dense.data.data()).ok());
  const GgmlTypeTraits* t = find_ggml_type(type->type_id);
  w.storage.type = t->type;
  if (t->min_offset >= 0) {
    const int64_t n_blocks = rows * cols / t->block_size;
    w.storage.block_mins.resize(static_cast<size_t>(n_blocks));
    EXPECT_TRUE(ggml_block_mins(*t, w.bytes.data(), n_blocks, w.storage.block_mins.data()));
  }
  return w;
}

std::unique_ptr<LlamaCppLinear> wrap(const GgufWeight& w) {
  auto l = LlamaCppLinear::create(std::make_unique<DenseLinear>(w.dense), w.storage);
  EXPECT_TRUE(l.ok()) << l.status().message();
  return l.ok() ? std::move(l).value() : nullptr;
}

TEST(LlamaCppLinear, Q4_1FollowsLlamaCppsBlockFormula) {
  // llama.cpp's Q4_1 x Q8_1 dot product, from the bytes of each pair of blocks
  // (block_q4_1: fp16 d, fp16 m, 16 bytes of nibbles, element j in the low nibble
  // of byte j and element j + 16 in the high one):
  //   y = Σ_b d_w · fp16(d_a) · Σ_i q_w[i] q_a[i] + m_w · fp16(s_a)
  // summed here in double; the layer sums in FP32, so the bound is
  // 64 · eps32 · Σ|terms|.
  const int64_t rows = 6, cols = 96, n_tokens = 3;
  const GgufWeight w = make_weight("q4_1", rows, cols, 5);
  std::vector<float> x = gaussian(static_cast<size_t>(n_tokens * cols), 9);
  x[40] = 7.5f;  // an outlier block
  const std::unique_ptr<LlamaCppLinear> layer = wrap(w);
  ASSERT_NE(layer, nullptr);
  EXPECT_EQ(layer->describe(), "f32 · llama.cpp q4_1 x q8_1");
  std::vector<float> y(static_cast<size_t>(n_tokens * rows));
  ThreadPool pool(2);
  layer->forward(x.data(), n_tokens, y.data(), pool);
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t r = 0; r < rows; ++r) {
      double sum = 0.0, magnitude = 0.0;
      for (int64_t b = 0; b < cols / 32; ++b) {
        const uint8_t* blk = w.bytes.data() + (r * (cols / 32) + b) * 20;
        uint16_t dw = 0, mw = 0;
        std::memcpy(&dw, blk, 2);
        std::memcpy(&mw, blk + 2, 2);
        uint16_t da = 0, sa = 0;
        int8_t qa[32];
        ggml_q8_1_encode(x.data() + t * cols + b * 32, &da, &sa, qa);
        int64_t dot = 0;
        for (int i = 0; i < 32; ++i) {
          const int qw = i < 16 ? (blk[4 + i] & 0x0F) : (blk[4 + i - 16] >> 4);
          dot += static_cast<int64_t>(qw) * qa[i];
        }
        const double main = static_cast<double>(fp16_to_float(dw)) * fp16_to_float(da) * static_cast<double>(dot);
        const double min_term = static_cast<double>(fp16_to_float(mw)) * fp16_to_float(sa);
        sum += main + min_term;
        magnitude += std::fabs(main) + std::fabs(min_term);
      }
      const double bound = 64.0 * 0x1p-23 * magnitude;
      EXPECT_NEAR(y[t * rows + r], sum, bound) << "token " << t << " row " << r;
    }
  }
}

TEST(LlamaCppLinear, Q4_0IsTheDenseProductOfTheRoundedRows) {
  // No min term: exactly the inner layer run on the Q8_0-rounded rows.
  const int64_t rows = 5, cols = 64, n_tokens = 4;
  const GgufWeight w = make_weight("q4_0", rows, cols, 2);
  const std::vector<float> x = gaussian(static_cast<size_t>(n_tokens * cols), 4);
  std::vector<float> xq(x.size());
  for (int64_t t = 0; t < n_tokens; ++t) {
    ASSERT_TRUE(ggml_round_activations(*find_ggml_act_type(GgmlType::Q8_0), x.data() + t * cols, cols,
                                       xq.data() + t * cols)
                    .ok());
  }
  ThreadPool pool(1);
  std::vector<float> got(static_cast<size_t>(n_tokens * rows)), expect(got.size());
  wrap(w)->forward(x.data(), n_tokens, got.data(), pool);
  DenseLinear(w.dense).forward(xq.data(), n_tokens, expect.data(), pool);
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], expect[i]) << i;
}

TEST(LlamaCppLinear, RefusesWhatItCannotCompute) {
  const GgufWeight q41 = make_weight("q4_1", 4, 64, 1);
  LinearGgmlStorage no_mins = q41.storage;
  no_mins.block_mins.pop_back();
  Status s = LlamaCppLinear::check(no_mins, 4, 64);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("needs 8 block minimums, got 7"), std::string::npos) << s.message();
  LinearGgmlStorage k;
  k.type = GgmlType::Q4_K;
  s = LlamaCppLinear::check(k, 4, 576);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("multiple of 256"), std::string::npos) << s.message();
  LinearGgmlStorage f32;
  s = LlamaCppLinear::check(f32, 4, 64);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("f32 needs no activation rounding"), std::string::npos) << s.message();
  // A non-finite input gives NaN outputs.
  std::vector<float> x(64, 1.0f), y(4);
  x[3] = INFINITY;
  ThreadPool pool(1);
  wrap(q41)->forward(x.data(), 1, y.data(), pool);
  for (float v : y) EXPECT_TRUE(std::isnan(v));
}

// ------------------------------------------------------------------ stories260K

class LlamaCppArith : public ::testing::Test {
 protected:
  void SetUp() override {
    stories_ = testing::shared_path("models/stories260K/stories260K.gguf");
    text_ = testing::shared_path("data/tinystories/tinystories_validation_head.txt");
    if (stories_.empty() || text_.empty()) GTEST_SKIP() << "shared test material missing (stories260K, tinystories)";
  }

  std::string export_to(const std::string& type) {
    const std::string out = dir_.file("s260k_" + type + ".gguf");
    ExportOptions o;
    o.model_path = stories_;
    o.output_path = out;
    o.type = type;
    o.force = true;
    o.log = [](const std::string&) {};
    auto target = find_export_target("gguf");
    EXPECT_TRUE(target.ok());
    auto report = run_export(**target, o);
    EXPECT_TRUE(report.ok()) << report.status().message();
    return out;
  }

  // Logits [n, vocab] of the first n tokens of a fixed sequence, with and
  // without llama.cpp's arithmetic; `report` receives what was wrapped.
  std::pair<std::vector<float>, std::vector<float>> logits(const std::string& path, LlamaCppArithReport* report) {
    auto source = open_model_source(path, {});
    EXPECT_TRUE(source.ok()) << source.status().message();
    auto storage = (*source)->linear_ggml_storage();
    EXPECT_TRUE(storage.ok()) << storage.status().message();
    auto plain = build_runtime_model(**source);
    auto arith = build_runtime_model(**source);
    EXPECT_TRUE(plain.ok() && arith.ok());
    EXPECT_TRUE(attach_llamacpp_arith(*arith, *storage, report).ok());
    std::vector<int32_t> tokens(48);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 37 + 1) % 512);
    ThreadPool pool(2);
    std::pair<std::vector<float>, std::vector<float>> out;
    for (auto [model, dst] : {std::pair{&*plain, &out.first}, std::pair{&*arith, &out.second}}) {
      dst->resize(tokens.size() * 512);
      auto cache = model->make_fp32_cache(64);
      EXPECT_TRUE(model->forward(tokens.data(), static_cast<int>(tokens.size()), 0, *cache, dst->data(), pool).ok());
    }
    return out;
  }

  ScopedTempDir dir_{"llamacpp_arith"};
  std::string stories_, text_;
};

TEST_F(LlamaCppArith, F32FileIsUnchangedBitForBit) {
  LlamaCppArithReport report;
  const auto [plain, arith] = logits(stories_, &report);
  // 5 layers x 7 linears + the tied head, all F32: nothing wrapped.
  EXPECT_EQ(report, (LlamaCppArithReport{{"f32 (exact)", 36}}));
  ASSERT_EQ(plain.size(), arith.size());
  EXPECT_EQ(std::memcmp(plain.data(), arith.data(), plain.size() * sizeof(float)), 0);
}

TEST_F(LlamaCppArith, QuantizedExportsChange) {
  // q4_0: every linear with rows of 64 in Q4_0 (Q8_0 activations); ffn_down's
  // rows of 172 fit no block type and went to F16 (F16 activations). q4_K: rows of
  // 64 take no K type either, so those linears went to Q5_0.
  const std::pair<std::string, LlamaCppArithReport> cases[] = {
      {"q4_0", {{"q4_0 x q8_0", 31}, {"f16 x f16", 5}}},
      {"q4_K", {{"q5_0 x q8_0", 31}, {"f16 x f16", 5}}},
  };
  for (const auto& [type, expect_report] : cases) {
    SCOPED_TRACE(type);
    LlamaCppArithReport report;
    const auto [plain, arith] = logits(export_to(type), &report);
    EXPECT_EQ(report, expect_report);
    // Different, and close: 8-bit activations move logits by about 1% of their spread.
    double max_diff = 0.0, max_abs = 0.0;
    for (size_t i = 0; i < plain.size(); ++i) {
      max_diff = std::max(max_diff, static_cast<double>(std::fabs(plain[i] - arith[i])));
      max_abs = std::max(max_abs, static_cast<double>(std::fabs(plain[i])));
    }
    EXPECT_GT(max_diff, 1e-4 * max_abs);
    EXPECT_LT(max_diff, 0.1 * max_abs);
  }
}

TEST_F(LlamaCppArith, LowbitFileReportsWhatItsGgufExportStores) {
  // A data-free Q4_1 RTN .lowbit file (ffn_down's rows of 172 fall back to FP16)
  // and its lossless GGUF export: the same type for every linear (the tied head
  // takes the embedding's) and the same block minimums bit for bit.
  const std::string recipe = dir_.file("q4_1.json");
  {
    std::ofstream(recipe) << R"({"name": "q4_1-rtn", "default": {"method": "rtn", "format": "q4_1", "fallback": "fp16"}})";
  }
  const std::string lbq = dir_.file("s.lbq");
  const testing::CommandResult q = testing::run_lowbit("quantize " + stories_ + " --recipe " + recipe + " -o " + lbq);
  ASSERT_EQ(q.exit_code, 0) << q.output;
  ExportOptions o;
  o.model_path = lbq;
  o.output_path = dir_.file("s_lbq.gguf");
  o.exact = true;
  o.log = [](const std::string&) {};
  ASSERT_TRUE(run_export(*find_export_target("gguf").value(), o).ok());
  auto storage_of = [](const std::string& path) {
    auto source = open_model_source(path, {});
    EXPECT_TRUE(source.ok()) << source.status().message();
    auto storage = (*source)->linear_ggml_storage();
    EXPECT_TRUE(storage.ok()) << storage.status().message();
    return std::move(storage).value();
  };
  const auto from_lbq = storage_of(lbq);
  const auto from_gguf = storage_of(o.output_path);
  ASSERT_EQ(from_lbq.size(), 36u);
  ASSERT_EQ(from_gguf.size(), 36u);
  int with_mins = 0;
  for (const auto& [name, s] : from_lbq) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(from_gguf.count(name));
    const LinearGgmlStorage& g = from_gguf.at(name);
    if (name != "lm_head") {
      EXPECT_EQ(s.type, name.find("down_proj") != std::string::npos ? GgmlType::F16 : GgmlType::Q4_1);
    }
    EXPECT_EQ(s.type, g.type);
    ASSERT_EQ(s.block_mins.size(), g.block_mins.size());
    EXPECT_EQ(std::memcmp(s.block_mins.data(), g.block_mins.data(), s.block_mins.size() * sizeof(float)), 0);
    with_mins += !s.block_mins.empty();
  }
  EXPECT_EQ(with_mins, 30);
}

// "PPL = 12.3456" from the CLI output.
double ppl_of(const std::string& output) {
  std::smatch m;
  if (!std::regex_search(output, m, std::regex("PPL = ([0-9.]+)"))) return -1.0;
  return std::stod(m[1]);
}

TEST_F(LlamaCppArith, CliFlagAndDefaultFp16Cache) {
  const std::string common = " --text " + text_ + " -c 128 --chunks 4 -t 2 --no-progress";
  auto run = [&](const std::string& model, const std::string& extra) {
    const testing::CommandResult r = testing::run_lowbit("ppl " + model + common + extra);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return r;
  };
  // F32 file: the linears are untouched, so with the FP32 cache the PPL is the exact one.
  const double exact = ppl_of(run(stories_, "").output);
  EXPECT_EQ(ppl_of(run(stories_, " --arith llamacpp --kv fp32").output), exact);
  // The default cache under --arith llamacpp is FP16 (llama-perplexity's).
  const testing::CommandResult fp16 = run(stories_, " --arith llamacpp -v");
  EXPECT_NE(fp16.output.find("KV cache fp16: 640.0 bytes/token"), std::string::npos) << fp16.output;
  EXPECT_NE(fp16.output.find("arith llamacpp: linears (weight x activation type) f32 (exact) x36"), std::string::npos)
      << fp16.output;
  EXPECT_EQ(ppl_of(fp16.output), ppl_of(run(stories_, " --kv fp16").output));
  // A quantized file: the flag changes the PPL by a little.
  const std::string q4 = export_to("q4_0");
  const double q4_exact = ppl_of(run(q4, " --kv fp16").output);
  const double q4_arith = ppl_of(run(q4, " --arith llamacpp").output);
  EXPECT_NE(q4_arith, q4_exact);
  EXPECT_NEAR(q4_arith, q4_exact, 0.02 * q4_exact);
  const testing::CommandResult bad = testing::run_lowbit("ppl " + q4 + common + " --arith fast");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("--arith"), std::string::npos) << bad.output;
}

}  // namespace
}  // namespace lowbit
