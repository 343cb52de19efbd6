// Rotation inside `lowbit quantize`: the recipe key, the built-in `rot` recipe
// (the FP model rotated: same logits), the header record the loader uses to put
// the online transform back, composition with RTN and GPTQ, and the observer
// that gives down_proj's statistics of the transformed input.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "kernels/orthogonal_rotation.h"
#include "model/llama_model.h"
#include "model/loader.h"
#include "model/lowbit_file.h"
#include "model/online_hadamard_linear.h"
#include "model_writers.h"
#include "pipeline/quantize_pipeline.h"
#include "pipeline/recipe.h"
#include "pipeline/rotated_observer.h"
#include "test_quantize_util.h"
#include "test_util.h"

namespace lowbit {
namespace {

using json = nlohmann::json;

using testing::get;

// Logits [n_tokens, vocab] of a loaded model, with the online rotation its file asks for.
std::vector<float> logits_of(const LoadedModel& m, const std::vector<int32_t>& tokens) {
  LlamaModel model = get(LlamaModel::create(m.config, m.weights));
  if (m.rotation) {
    const Status s = attach_online_rotations(model, *m.rotation);
    EXPECT_TRUE(s.ok()) << s.message();
  }
  std::unique_ptr<KvCache> cache = model.make_fp32_cache(static_cast<int>(tokens.size()));
  ThreadPool pool(1);
  std::vector<float> logits(tokens.size() * static_cast<size_t>(m.config.vocab_size));  // [n_tokens, vocab]
  const Status s = model.forward(tokens.data(), static_cast<int>(tokens.size()), 0, *cache, logits.data(), pool);
  EXPECT_TRUE(s.ok()) << s.message();
  return logits;
}

// Mean over positions of KL(softmax(p) ‖ softmax(q)), logits [n, vocab].
double mean_kld(const std::vector<float>& p, const std::vector<float>& q, int vocab) {
  const size_t n = p.size() / static_cast<size_t>(vocab);
  double total = 0.0;
  for (size_t t = 0; t < n; ++t) {
    const float* a = p.data() + t * vocab;
    const float* b = q.data() + t * vocab;
    double ma = a[0], mb = b[0];
    for (int i = 1; i < vocab; ++i) ma = std::max<double>(ma, a[i]), mb = std::max<double>(mb, b[i]);
    double za = 0.0, zb = 0.0;
    for (int i = 0; i < vocab; ++i) za += std::exp(a[i] - ma), zb += std::exp(b[i] - mb);
    double kl = 0.0;
    for (int i = 0; i < vocab; ++i) {
      const double la = a[i] - ma - std::log(za), lb = b[i] - mb - std::log(zb);
      kl += std::exp(la) * (la - lb);
    }
    total += kl;
  }
  return total / static_cast<double>(n);
}

class RotationPipeline : public testing::StoriesPipelineTest {
 protected:
  QuantizeReport run(const Recipe& recipe, const std::string& out, bool calibrate) {
    PipelineOptions o = pipeline_options(out, calibrate);
    return get(quantize_model(recipe, o));
  }

  static Recipe recipe(const json& doc) { return get(parse_recipe(doc, "test")); }

  // BOS + the first 256 tokens of the evaluation text: in-distribution inputs for the KLD.
  std::vector<int32_t> text_tokens(const LoadedModel& m) const {
    std::ifstream in(text_);
    std::string text(4096, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<size_t>(in.gcount()));
    std::vector<int32_t> t = {m.tokenizer->bos_id()};
    const std::vector<int32_t> body = m.tokenizer->encode(text);
    t.insert(t.end(), body.begin(), body.begin() + std::min<size_t>(256, body.size()));
    return t;
  }

};

TEST_F(RotationPipeline, RotRecipeKeepsTheFunction) {
  testing::ScopedTempDir dir("rot_pipeline");
  const QuantizeReport report = run(get(load_recipe("rot")), dir.file("rot.lbq"), false);
  EXPECT_EQ(report.rotation["seed"], 0);
  EXPECT_EQ(report.rotation["online_down"], true);
  // The header: rotation record, the head untied and stored.
  const LowbitModelFile file = get(LowbitModelFile::open(dir.file("rot.lbq")));
  ASSERT_FALSE(file.info().rotation.is_null());
  EXPECT_EQ(file.info().rotation["transforms"]["residual"], "hadamard 64 = 64·1, random signs");
  EXPECT_EQ(file.info().rotation["transforms"]["down"], "random orthogonal 172 (no known Hadamard matrix)");
  EXPECT_FALSE(file.config().tied_embeddings);
  EXPECT_TRUE(file.has("lm_head"));
  const LoadedModel base = get(load_model(model_, {}));
  const LoadedModel rotated = get(load_model(dir.file("rot.lbq"), {}));
  ASSERT_TRUE(rotated.rotation.has_value());
  EXPECT_TRUE(rotated.rotation->online_down);
  for (float g : rotated.weights.layers[2].ffn_norm) ASSERT_EQ(g, 1.0f);
  const std::vector<int32_t> tokens = text_tokens(base);
  const std::vector<float> want = logits_of(base, tokens);
  const std::vector<float> got = logits_of(rotated, tokens);
  float peak = 0.0f;
  for (float v : want) peak = std::max(peak, std::fabs(v));
  const testing::MaxDiff d = testing::max_abs_diff(want, got);
  EXPECT_LE(d.value, 1e-4f * peak) << "logit " << d.index << ": " << want[d.index] << " vs " << got[d.index];
  EXPECT_LT(mean_kld(want, got, base.config.vocab_size), 1e-9);
  // Loaded without its online transform the model is wrong: the header record matters.
  LoadedModel stripped = get(load_model(dir.file("rot.lbq"), {}));
  stripped.rotation.reset();
  EXPECT_GT(mean_kld(want, logits_of(stripped, tokens), base.config.vocab_size), 1e-3);
}

TEST_F(RotationPipeline, ComposesWithRtnAndGptq) {
  testing::ScopedTempDir dir("rot_w4");
  const json rot = {{"seed", 1}, {"online_down", true}, {"rotate_v_heads", true}};
  const json rtn = {{"method", "rtn"}, {"format", "int4_g128_asym"}};
  const json gptq = {{"method", "gptq"}, {"format", "int4_g128_asym"}};
  run(recipe({{"name", "rot-rtn"}, {"rotation", rot}, {"default", rtn}}), dir.file("rtn.lbq"), false);
  run(recipe({{"name", "rot-gptq"}, {"rotation", rot}, {"default", gptq}}), dir.file("gptq.lbq"), true);
  run(recipe({{"name", "plain-rtn"}, {"default", rtn}}), dir.file("plain.lbq"), false);
  const LoadedModel base = get(load_model(model_, {}));
  const std::vector<int32_t> tokens = text_tokens(base);
  const std::vector<float> want = logits_of(base, tokens);
  const int vocab = base.config.vocab_size;
  const double kld_rtn = mean_kld(want, logits_of(get(load_model(dir.file("rtn.lbq"), {})), tokens), vocab);
  const double kld_gptq = mean_kld(want, logits_of(get(load_model(dir.file("gptq.lbq"), {})), tokens), vocab);
  const double kld_plain = mean_kld(want, logits_of(get(load_model(dir.file("plain.lbq"), {})), tokens), vocab);
  std::printf("  KLD to FP32: rot+rtn %.5f  rot+gptq %.5f  plain rtn %.5f\n", kld_rtn, kld_gptq, kld_plain);
  EXPECT_TRUE(std::isfinite(kld_rtn));
  EXPECT_GT(kld_rtn, 0.05);  // 4-bit weights lose something (measured 0.117)
  EXPECT_LT(kld_rtn, 0.3);
  // GPTQ on the rotated model (with down_proj's H of the transformed input) beats RTN on it.
  EXPECT_LT(kld_gptq, kld_rtn);
}

TEST_F(RotationPipeline, AwqOnDownProjIsRejectedUnderTheOnlineTransform) {
  testing::ScopedTempDir dir("rot_awq");
  PipelineOptions o;
  o.model_path = model_;
  o.output_path = dir.file("awq.lbq");
  o.calib_path = text_;
  o.calibration.n_samples = 2;
  o.calibration.seq_len = 32;
  o.progress = false;
  const json awq = {{"method", "awq"}, {"format", "int4_g128_asym"}};
  const auto r = quantize_model(recipe({{"name", "rot-awq"}, {"rotation", json::object()}, {"default", awq}}), o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("AWQ on down_proj"), std::string::npos) << r.status().message();
}

TEST(RotationRecipe, ParsesAndRejectsBadRotation) {
  const json fp32 = {{"method", "none"}, {"format", "fp32"}};
  const Recipe r = get(parse_recipe(json{{"name", "r"}, {"rotation", {{"seed", 5}}}, {"default", fp32}}, "r.json"));
  ASSERT_TRUE(r.rotation.has_value());
  EXPECT_EQ(r.rotation->seed, 5u);
  EXPECT_TRUE(r.rotation->online_down);
  EXPECT_FALSE(get(load_recipe("w8")).rotation.has_value());
  EXPECT_TRUE(get(load_recipe("rot")).rotation.has_value());
  const auto bad = parse_recipe(json{{"name", "r"}, {"rotation", {{"online_down", "yes"}}}, {"default", fp32}}, "r.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("recipe r.json: rotation.online_down must be true or false"), std::string::npos)
      << bad.status().message();
}

// Records what it is shown.
class Recorder : public ActivationObserver {
 public:
  void observe(const std::string& name, const float* x, int64_t n_tokens, int64_t in) override {
    seen[name].assign(x, x + n_tokens * in);
  }
  std::map<std::string, std::vector<float>> seen;
};

TEST(RotatedInputObserver, RotatesOnlyTheNamedInput) {
  const Rotation h = Rotation::create(12, 0, false);
  Recorder rec;
  RotatedInputObserver obs(rec, "layers.0.down_proj", h);
  std::vector<float> x(24);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i) - 7.0f;
  obs.observe("layers.0.down_proj", x.data(), 2, 12);
  obs.observe("layers.0.up_proj", x.data(), 2, 12);
  std::vector<float> want = x;
  h.apply(want.data(), 2);
  EXPECT_EQ(rec.seen["layers.0.down_proj"], want);
  EXPECT_EQ(rec.seen["layers.0.up_proj"], x);
}

}  // namespace
}  // namespace lowbit
