// Quantized KV caches in the model (stories260K): the Must-show bounds of issue
// 6 on logits, exactness of rotation, pre-RoPE, outliers; decoding through a
// quantized cache; NUQ codebooks; KVTuner's choice.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <fstream>
#include <iterator>
#include <optional>

#include "eval/sampler.h"
#include "model/decoder_block.h"
#include "model/ops.h"
#include "kvcache/kv_calibration.h"
#include "kvcache/kv_spec.h"
#include "kvcache/kv_tuner.h"
#include "kvcache/nuq_fit.h"
#include "kvcache/quantized_kv_cache.h"
#include "model/llama_model.h"
#include "kernels/hadamard.h"
#include "model/loader.h"
#include "model_writers.h"
#include "test_util.h"

namespace lowbit {
namespace {

struct Stories {
  LoadedModel loaded;
  LlamaModel model;
};

// Loaded once for the whole file.
const Stories* stories() {
  static const Stories* s = [] () -> const Stories* {
    const std::string path = testing::shared_path("models/stories260K/stories260K.gguf");
    if (path.empty()) return nullptr;
    auto loaded = load_model(path, {});
    if (!loaded.ok()) return nullptr;
    auto* out = new Stories{std::move(loaded).value(), LlamaModel()};
    auto model = LlamaModel::create(out->loaded.config, out->loaded.weights);
    if (!model.ok()) return nullptr;
    out->model = std::move(model).value();
    return out;
  }();
  return s;
}

#define REQUIRE_STORIES()                                                          \
  const Stories* st = stories();                                                   \
  if (st == nullptr) GTEST_SKIP() << "shared test material missing: stories260K";

// BOS and the first n - 1 tokens of the TinyStories sample (empty when the file is missing).
std::vector<int32_t> story_tokens(const Stories& s, int n) {
  const std::string path = testing::shared_path("data/tinystories/tinystories_sample.txt");
  if (path.empty()) return {};
  std::ifstream in(path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<int32_t> t{s.loaded.tokenizer->bos_id()};
  const std::vector<int32_t> body = s.loaded.tokenizer->encode(text);
  t.insert(t.end(), body.begin(), body.begin() + std::min<size_t>(body.size(), n - 1));
  return t;
}

// A fixed token sequence of length n (ids from a small LCG, inside the vocabulary).
std::vector<int32_t> tokens(int n, uint32_t seed = 1) {
  std::vector<int32_t> t(n);
  t[0] = 1;
  for (int i = 1; i < n; ++i) {
    seed = seed * 1664525u + 1013904223u;
    t[i] = 2 + static_cast<int32_t>((seed >> 8) % 500);
  }
  return t;
}

std::vector<float> logits_with_spec(const LlamaModel& model, const std::vector<int32_t>& toks, const KvSpec& spec) {
  ThreadPool pool(2);
  const int n = static_cast<int>(toks.size());
  auto cache = model.make_cache(n, make_kv_cache_factory(spec));
  EXPECT_TRUE(cache.ok()) << cache.status().message();
  std::vector<float> logits(static_cast<size_t>(n) * model.config().vocab_size);
  const Status s = model.forward(toks.data(), n, 0, **cache, logits.data(), pool);
  EXPECT_TRUE(s.ok()) << s.message();
  return logits;
}

std::vector<float> logits_with(const LlamaModel& model, const std::vector<int32_t>& toks, const std::string& spec_text,
                               KvCodebooks books = {}) {
  auto spec = parse_kv_spec(spec_text);
  EXPECT_TRUE(spec.ok()) << spec.status().message();
  spec->codebooks = std::move(books);
  return logits_with_spec(model, toks, *spec);
}

// max |a - b| with its index in the failure message.
double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b, size_t* where) {
  double worst = 0;
  *where = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs(static_cast<double>(a[i]) - b[i]);
    if (d > worst) worst = d, *where = i;
  }
  return worst;
}

#define EXPECT_LOGITS_NEAR(a, b, tol)                                                                   \
  do {                                                                                                  \
    size_t at_ = 0;                                                                                     \
    const double d_ = max_abs_diff(a, b, &at_);                                                         \
    EXPECT_LE(d_, tol) << "worst logit " << at_ << ": " << (a)[at_] << " vs " << (b)[at_];              \
  } while (0)

// Issue 6 asks for 8-bit KV to move stories260K's logits by < 1e-2 (max abs).
// That bound is out of reach for any 8-bit code on this model, and even for an
// FP16 cache: its keys reach |k| = 30 (a half step of 8-bit codes over a head's
// range is ~0.1) and the max logit change is ~3x the max key error. Measured on
// these 200 story tokens (max |change|): an FP16 cache (k8v8-kivi-b1-g1: every
// element its own group, so it decodes to its FP16 zero point) 0.028; FP16 keys
// alone (k8v8-kivi-b1) 0.048 with 8-bit values; the finest 8-bit key codes
// tried, pre-RoPE per channel over 2-token blocks (k8v32-kivi-b2-prerope, 24 bits
// per element with the FP16 scale and zero point) 0.017; -b4 0.076, -b8 0.097;
// 8-bit values alone k32v8 0.041, -g4 0.025, -g2 0.0046 (24 bits per element).
// So the changes are pinned in measured bands (both regressions and unexplained
// improvements show), the FP16 cache's band documents why 1e-2 cannot hold, and
// the 1e-2 bound is asserted where it holds: the mean |change|.
TEST(KvModel, EightBitLogitChangesArePinned) {
  REQUIRE_STORIES();
  const auto toks = story_tokens(*st, 200);
  if (toks.empty()) GTEST_SKIP() << "shared test material missing: tinystories_sample.txt";
  const auto fp = logits_with(st->model, toks, "fp32");
  size_t at = 0;
  auto mean_abs = [&](const std::vector<float>& q) {
    double sum = 0;
    for (size_t i = 0; i < q.size(); ++i) sum += std::fabs(q[i] - fp[i]);
    return sum / q.size();
  };
  const auto k8 = logits_with(st->model, toks, "k8v8");
  const auto kivi = logits_with(st->model, toks, "k8v8-kivi-b8-prerope");
  const auto v8 = logits_with(st->model, toks, "k32v8");
  const auto fp16 = logits_with(st->model, toks, "k8v8-kivi-b1-g1");
  EXPECT_GT(mean_abs(k8), 0.05);  // plain per-token 8-bit keys: 0.072 measured
  EXPECT_LT(mean_abs(k8), 0.10);
  EXPECT_LT(mean_abs(kivi), 1e-2);
  EXPECT_LT(mean_abs(v8), 1e-2);
  const double max_k8 = max_abs_diff(k8, fp, &at);
  const double max_kivi = max_abs_diff(kivi, fp, &at);
  const double max_v8 = max_abs_diff(v8, fp, &at);
  // Measured: 0.83, 0.097, 0.041.
  EXPECT_GT(max_k8, 0.6);
  EXPECT_LT(max_k8, 1.1);
  EXPECT_GT(max_kivi, 0.07);
  EXPECT_LT(max_kivi, 0.13);
  EXPECT_GT(max_v8, 0.03);
  EXPECT_LT(max_v8, 0.055);
  const double max_fp16 = max_abs_diff(fp16, fp, &at);  // measured 0.028
  EXPECT_GT(max_fp16, 0.02);
  EXPECT_LT(max_fp16, 0.04);
}

// Captures the attention output of a block (the input of its o_proj) and the
// normalized input its q/k/v projections read (the input of q_proj).
class AttentionCapture : public ActivationObserver {
 public:
  void observe(const std::string& name, const float* x, int64_t n, int64_t features) override {
    auto ends_with = [&](const char* s) { return name.size() > 6 && name.compare(name.size() - 6, 6, s) == 0; };
    if (ends_with("o_proj")) out.assign(x, x + n * features);
    if (ends_with("q_proj")) normed.assign(x, x + n * features);
  }
  std::vector<float> out;     // [n, n_heads * head_dim]
  std::vector<float> normed;  // [n, dim]
};

// The attention output of layer `layer`'s block on the embeddings of `toks`, with
// a cache of `spec_text`; the block's normalized input into `normed` when given.
// `key_order` is the -reorder permutation of that layer's key channels.
std::vector<float> block_attention(const LoadedModel& m, int layer, const std::vector<int32_t>& toks,
                                   const std::string& spec_text, std::vector<float>* normed = nullptr,
                                   const std::vector<int32_t>& key_order = {}) {
  const ModelConfig& c = m.config;
  auto block = DecoderBlock::create(c, layer, m.weights.layers[layer], m.weights.rope_freq_factors);
  EXPECT_TRUE(block.ok()) << block.status().message();
  const int n = static_cast<int>(toks.size());
  std::vector<float> x(static_cast<size_t>(n) * c.dim);  // [n, dim]
  for (int t = 0; t < n; ++t) {
    std::copy_n(m.weights.token_embedding.data() + static_cast<int64_t>(toks[t]) * c.dim, c.dim,
                x.data() + static_cast<int64_t>(t) * c.dim);
  }
  auto spec = parse_kv_spec(spec_text);
  EXPECT_TRUE(spec.ok());
  if (spec->reorder_keys) spec->key_order.layers = {key_order};
  auto cache = make_kv_cache_factory(*spec)(KvCacheShape{1, n, c.n_kv_heads, c.head_dim});
  EXPECT_TRUE(cache.ok()) << cache.status().message();
  BlockScratch scratch;
  ThreadPool pool(2);
  AttentionCapture capture;
  EXPECT_TRUE(block->forward(x.data(), n, 0, **cache, 0, scratch, pool, &capture).ok());
  if (normed != nullptr) *normed = capture.normed;
  return capture.out;
}

// How far float rounding can move the attention output of block_attention
// between a cache that rotates keys and values by the Hadamard matrix of order n
// (per head, n = head_dim, or over groups of heads) and the FP32 cache; [T, q_dim].
//
// Both compute o_th = Σ_p P_tp v_p (p ≤ t, v_p of the query head's KV head), P_t =
// softmax(s_t), s_tp = q_th·k_p/√d, d = head_dim, in float, rounded differently.
// With u = 2⁻²⁴, Q = ‖q_th‖, K = max_p ‖k_p‖ and V = max_p ‖v_p‖ (whole KV rows,
// which bound every head and every rotation group; RoPE keeps these norms) and
// A = QK/√d (no score exceeds it), to first order in u:
//   - a rotated element is (Σ_i ±x_i)/√n, summed by k butterfly stages and one
//     dense product of m terms (n = 2^k·m, kernels/hadamard.h), then scaled: its
//     error is ≤ r·u·Σ|x_i|/√n ≤ r·u·‖x‖ with r = k + m + 1;
//   - a score is a dot of d terms times the scale: ≤ (d + 1)·u·A per path. The
//     rotated path makes two rotations on it (q and k per head; k written and read
//     back over a group), each ≤ r·u·√d·A (Σ_i |q_i|·r·u·K ≤ √d·Q·r·u·K), and a
//     pre-RoPE cache applies RoPE to keys that differ by those errors (≤ 3·u·√d·A
//     per path): |δs| ≤ (2d + 2 + 2r√d + 6√d)·u·A for both paths together;
//   - a score error moves P_p by P_p·(δs_p − Σ_j P_j δs_j), so o by ≤ 2·max|δs|·V;
//   - softmax rounds x_p − max (|x_p − max| ≤ 2A), exp (4 ulp, ExpRows), a sum of
//     t + 1 positive terms and the normalization: P_p within (4A + t + 11)·u
//     relative per path, which moves o by as much times V;
//   - P·V sums t + 1 terms: ≤ (t + 1)·u·V per path; the rotated path rotates v and
//     un-rotates o: ≤ 2·r·u·V.
// Together:  |o_rot − o| ≤ u·V·[(4d + (4r + 12)·√d + 12)·A + 4t + 2r + 24].
// A rotation that does not match (queries not rotated, R for Rᵀ) changes the
// scores by O(A) and the outputs by O(V): far outside this bound.
std::vector<double> rotation_rounding_bound(const LoadedModel& m, int layer, const std::vector<float>& normed,
                                            int64_t order) {
  const ModelConfig& c = m.config;
  const LayerWeights& w = m.weights.layers[layer];
  const int64_t n = static_cast<int64_t>(normed.size()) / c.dim;
  const int d = c.head_dim;
  const std::optional<HadamardOrder> h_order = hadamard_order(order);
  EXPECT_TRUE(h_order.has_value()) << order;
  if (!h_order) return {};
  const double r = std::log2(static_cast<double>(h_order->pow2)) + h_order->base + 1;
  // Row t of normed·Wᵀ (+ bias) in double, split in heads of d: the norm of each.
  auto head_norms = [&](const Matrix& wm, int64_t t, int heads) {
    std::vector<double> norms(heads, 0.0);
    for (int64_t row = 0; row < wm.rows; ++row) {
      double y = wm.bias.empty() ? 0.0 : wm.bias[row];
      for (int64_t i = 0; i < c.dim; ++i) y += static_cast<double>(normed[t * c.dim + i]) * wm.data[row * wm.cols + i];
      norms[row / d] += y * y;
    }
    for (double& x : norms) x = std::sqrt(x);
    return norms;
  };
  auto row_norm = [&](const Matrix& wm, int64_t t) {
    double sq = 0.0;
    for (double x : head_norms(wm, t, c.n_kv_heads)) sq += x * x;
    return std::sqrt(sq);
  };
  const double u = 0x1.0p-24, root_d = std::sqrt(static_cast<double>(d));
  std::vector<double> bound(static_cast<size_t>(n) * c.q_dim());  // [T, q_dim]
  double k_max = 0.0, v_max = 0.0;
  for (int64_t t = 0; t < n; ++t) {
    k_max = std::max(k_max, row_norm(w.k_proj, t));
    v_max = std::max(v_max, row_norm(w.v_proj, t));
    const std::vector<double> q = head_norms(w.q_proj, t, c.n_heads);
    for (int h = 0; h < c.n_heads; ++h) {
      const double a = q[h] * k_max / root_d;
      const double b = u * v_max * ((4.0 * d + (4.0 * r + 12.0) * root_d + 12.0) * a + 4.0 * t + 2.0 * r + 24.0);
      std::fill_n(bound.begin() + t * c.q_dim() + static_cast<int64_t>(h) * d, d, b);
    }
  }
  return bound;
}

// |a − b| ≤ bound elementwise; a failure names the element furthest past its bound.
::testing::AssertionResult within_bound(const std::vector<float>& a, const std::vector<float>& b,
                                        const std::vector<double>& bound) {
  if (a.size() != b.size() || a.size() != bound.size()) return ::testing::AssertionFailure() << "sizes differ";
  size_t at = 0;
  double worst = -1.0;  // max |a − b| / bound
  for (size_t i = 0; i < a.size(); ++i) {
    const double r = std::fabs(static_cast<double>(a[i]) - b[i]) / bound[i];
    if (r > worst) worst = r, at = i;
  }
  if (worst <= 1.0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "element " << at << ": " << a[at] << " vs " << b[at] << ", |diff| "
                                       << std::fabs(static_cast<double>(a[at]) - b[at]) << " > bound " << bound[at];
}

// Rotating keys and values by the Hadamard transform, with the queries rotated
// to match and the output rotated back, leaves attention unchanged up to float
// rounding: the attention output within rotation_rounding_bound (order
// head_dim), and through all 5 layers the logits (|logit| up to 19) within 5e-5.
TEST(KvModel, RotatedAttentionEqualsUnrotated) {
  REQUIRE_STORIES();
  const auto toks = tokens(200);
  for (int layer : {0, 2, 4}) {
    std::vector<float> normed;
    const auto fp = block_attention(st->loaded, layer, toks, "fp32", &normed);
    ASSERT_EQ(fp.size(), toks.size() * st->loaded.config.q_dim());
    const auto bound = rotation_rounding_bound(st->loaded, layer, normed, st->loaded.config.head_dim);
    for (const char* spec : {"k32v32-rot", "k32v32-rot-prerope"}) {
      EXPECT_TRUE(within_bound(block_attention(st->loaded, layer, toks, spec), fp, bound))
          << spec << " layer " << layer;
    }
  }
  const auto fp = logits_with(st->model, toks, "fp32");
  EXPECT_LOGITS_NEAR(logits_with(st->model, toks, "k32v32-rot"), fp, 5e-5);
  EXPECT_LOGITS_NEAR(logits_with(st->model, toks, "k32v32-rot-prerope"), fp, 5e-5);
}

// A random model with SmolLM2's attention shape in miniature: 6 query heads
// sharing 3 KV heads of 12, so per-head rotation is of order 12 (Paley) and
// grouped-head rotation of the 3 heads of order 36 (kernels/hadamard.h), neither
// a power of two (SmolLM2: 3 KV heads of 64, -rotg3 of order 192 = 16·12).
LoadedModel grouped_heads_model() {
  ModelConfig c;
  c.architecture = "llama";
  c.n_layers = 2;
  c.dim = 72;
  c.n_heads = 6;
  c.n_kv_heads = 3;
  c.head_dim = 12;
  c.ffn_dim = 96;
  c.vocab_size = 64;
  c.max_seq_len = 256;
  c.norm_eps = 1e-5f;
  c.rope_theta = 10000.0;
  c.rope_layout = RopeLayout::kHalfSplit;
  return testing::make_random_model(c, 11);
}

// 120 tokens inside grouped_heads_model's vocabulary of 64.
std::vector<int32_t> grouped_heads_tokens() {
  std::vector<int32_t> t = tokens(120, 5);
  for (int32_t& x : t) x %= 64;
  return t;
}

std::vector<float> logits_of(const LoadedModel& m, const std::vector<int32_t>& toks, const std::string& spec_text) {
  auto model = LlamaModel::create(m.config, testing::clone_weights(m).weights);
  EXPECT_TRUE(model.ok()) << model.status().message();
  return logits_with(*model, toks, spec_text);
}

// Grouped-head rotation (-rotgG, RotateKV) stores keys and values rotated over
// groups of G KV heads and un-rotates them on reading; per-head rotation of a
// non-power-of-two head_dim rotates the queries to match. In FP32 storage
// attention is unchanged up to float rounding: the attention output within the
// rounding bound of rotation_rounding_bound (from the block's own q, k and v
// norms, so it holds whichever sgemm kernel OpenBLAS picks) and the logits within
// 5e-5, post- and pre-RoPE, on stories260K (4 KV heads of 8: groups of 2 and 4,
// orders 16 and 32) and on the random model (orders 12 and 36).
TEST(KvModel, GroupedRotatedAttentionEqualsUnrotated) {
  const LoadedModel random = grouped_heads_model();
  const std::vector<int32_t> toks = grouped_heads_tokens();
  const int hd = random.config.head_dim;
  for (int layer : {0, 1}) {
    std::vector<float> normed;
    const auto fp = block_attention(random, layer, toks, "fp32", &normed);
    ASSERT_EQ(fp.size(), toks.size() * random.config.q_dim());
    for (const auto& [spec, order] : {std::pair{"k32v32-rot", hd}, std::pair{"k32v32-rotg3", 3 * hd},
                                      std::pair{"k32v32-rot-prerope", hd}, std::pair{"k32v32-rotg3-prerope", 3 * hd}}) {
      const auto rotated = block_attention(random, layer, toks, spec);
      EXPECT_TRUE(within_bound(rotated, fp, rotation_rounding_bound(random, layer, normed, order)))
          << spec << " layer " << layer;
      EXPECT_NE(rotated, block_attention(random, layer, toks, "k8v8-rotg3")) << "the 8-bit cache is in use";
    }
  }
  const auto fp = logits_of(random, toks, "fp32");
  EXPECT_LOGITS_NEAR(logits_of(random, toks, "k32v32-rotg3"), fp, 5e-5);
  EXPECT_LOGITS_NEAR(logits_of(random, toks, "k32v32-rot-prerope"), fp, 5e-5);

  REQUIRE_STORIES();
  const auto story = tokens(200);
  const int shd = st->loaded.config.head_dim;
  for (int layer : {0, 4}) {
    std::vector<float> normed;
    const auto sfp = block_attention(st->loaded, layer, story, "fp32", &normed);
    for (const auto& [spec, order] : {std::pair{"k32v32-rotg2", 2 * shd}, std::pair{"k32v32-rotg4", 4 * shd},
                                      std::pair{"k32v32-rotg4-prerope", 4 * shd}}) {
      EXPECT_TRUE(within_bound(block_attention(st->loaded, layer, story, spec), sfp,
                               rotation_rounding_bound(st->loaded, layer, normed, order)))
          << spec << " layer " << layer;
    }
  }
  EXPECT_LOGITS_NEAR(logits_with(st->model, story, "k32v32-rotg4-prerope"), logits_with(st->model, story, "fp32"),
                     5e-5);
}

// RotateKV's channel reordering (-reorder) permutes the keys before the rotation
// and reads them back un-rotated and un-permuted, per head (-rot: the queries are
// then not rotated) or over groups (-rotgG): in FP32 storage the attention output
// is within rotation_rounding_bound (which counts two rotations on the keys, the
// write and the read), post- and pre-RoPE, for a permutation across heads; the
// order fitted on stories260K (4 KV heads of 8) keeps its logits within 5e-5.
TEST(KvModel, ReorderedRotatedAttentionEqualsUnrotated) {
  const LoadedModel random = grouped_heads_model();
  const std::vector<int32_t> toks = grouped_heads_tokens();
  const int hd = random.config.head_dim;
  std::vector<int32_t> across(random.config.kv_dim());  // channel j·7 mod 36: every head's channels scattered
  for (int j = 0; j < random.config.kv_dim(); ++j) across[j] = (j * 7) % random.config.kv_dim();
  for (int layer : {0, 1}) {
    std::vector<float> normed;
    const auto fp = block_attention(random, layer, toks, "fp32", &normed);
    for (const auto& [spec, order] : {std::pair{"k32v32-rot-reorder", hd}, std::pair{"k32v32-rotg3-reorder", 3 * hd},
                                      std::pair{"k32v32-rot-prerope-reorder", hd}}) {
      EXPECT_TRUE(within_bound(block_attention(random, layer, toks, spec, nullptr, across), fp,
                               rotation_rounding_bound(random, layer, normed, order)))
          << spec << " layer " << layer;
    }
  }
  REQUIRE_STORIES();
  ThreadPool pool(2);
  for (const char* text : {"k32v32-rot-reorder", "k32v32-rotg2-reorder", "k2v2-rot-reorder"}) {
    auto spec = parse_kv_spec(text);
    ASSERT_TRUE(spec.ok());
    auto order = fit_kv_key_order(st->model, {tokens(128, 7), tokens(128, 8)}, *spec, pool);
    ASSERT_TRUE(order.ok()) << order.status().message();
    ASSERT_EQ(order->layers.size(), 5u);
    for (const auto& o : order->layers) EXPECT_TRUE(check_channel_order(o, 32, text).ok());
    spec->key_order = *order;
    const auto story = tokens(200);
    if (spec->layer(0).key.quantized()) {
      EXPECT_NE(logits_with_spec(st->model, story, *spec), logits_with(st->model, story, "k2v2-rot")) << text;
    } else {
      EXPECT_LOGITS_NEAR(logits_with_spec(st->model, story, *spec), logits_with(st->model, story, "fp32"), 5e-5);
    }
  }
}

// Q-Norm (-qnorm) changes the fitted codebooks (the end levels leave ±1) and keeps
// them valid; without -nuq it is refused.
TEST(KvNuq, QNormCodebooksAreValidAndDiffer) {
  REQUIRE_STORIES();
  ThreadPool pool(2);
  auto plain = parse_kv_spec("k2v2-nuq");
  auto normed = parse_kv_spec("k2v2-nuq-qnorm");
  ASSERT_TRUE(plain.ok() && normed.ok());
  const std::vector<std::vector<int32_t>> seqs = {tokens(128, 7), tokens(128, 8)};
  auto a = fit_kv_codebooks(st->model, seqs, *plain, pool);
  auto b = fit_kv_codebooks(st->model, seqs, *normed, pool);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(b->layers.size(), 5u);
  for (size_t l = 0; l < 5; ++l) {
    EXPECT_TRUE(check_codebook_levels(b->layers[l].key, "key").ok());
    EXPECT_TRUE(check_codebook_levels(b->layers[l].value, "value").ok());
    EXPECT_EQ(a->layers[l].key.front(), -1.0f);  // pinned
    EXPECT_NE(a->layers[l].key, b->layers[l].key) << l;
  }
}

// The stored rows under -rotgG are the rows times the Hadamard matrix of order
// G·head_dim (checked against the dense reference), and reads return the rows.
TEST(KvModel, GroupedRotationStoresRotatedRows) {
  const KvCacheShape shape{1, 10, 3, 12};
  auto spec = parse_kv_spec("k32v32-rotg3");
  ASSERT_TRUE(spec.ok());
  auto cache = QuantizedKvCache::create(*spec, shape);
  ASSERT_TRUE(cache.ok()) << cache.status().message();
  const KvCacheLayout layout = (*cache)->layout();
  EXPECT_FALSE(layout.keys_rotated || layout.values_rotated);
  std::vector<float> k(10 * 36), v(10 * 36);
  std::mt19937 rng(4);
  std::normal_distribution<float> d(0.0f, 2.0f);
  for (float& x : k) x = d(rng);
  for (float& x : v) x = d(rng);
  ASSERT_TRUE((*cache)->write(0, 0, 10, k.data(), v.data()).ok());
  std::vector<float> stored(k.size()), kb(k.size()), vb(v.size());
  (*cache)->read_stored(0, true, 10, stored.data());
  const std::vector<double> h = hadamard_matrix(36);
  ASSERT_EQ(h.size(), 36u * 36u);
  for (int t = 0; t < 10; ++t) {
    for (int j = 0; j < 36; ++j) {
      double e = 0;
      for (int i = 0; i < 36; ++i) e += k[t * 36 + i] * h[i * 36 + j];
      EXPECT_NEAR(stored[t * 36 + j], e, 1e-5) << t << " " << j;
    }
  }
  (*cache)->read(0, 10, kb.data(), vb.data());
  for (size_t i = 0; i < k.size(); ++i) {
    ASSERT_NEAR(kb[i], k[i], 1e-5);
    ASSERT_NEAR(vb[i], v[i], 1e-5);
  }
}

// Pre-RoPE storage applies RoPE after reading: with FP32 storage the logits equal
// the FP path to float rounding. With 16-bit codes every key read back and
// rotated by RoPE is within sqrt(2) half steps of the exact rotated key (RoPE
// turns pairs of a head, so a pair's error keeps its length).
// Issue 6's bound of 1e-4 on the logits holds with fine groups: keys pre-RoPE per
// channel over 2-token blocks, values per token in groups of 2
// (k16v16-kivi-b2-prerope-g2; measured 1.5e-5 on these tokens, 1.9e-5 on story
// text). That is a correctness setting, not a compact one: an FP32 scale and zero
// point per 2 elements make it 48 bits per element. With the default groups
// (per-token groups of head_dim = 8, FP32 scales) 16-bit codes move the logits by
// 1.9e-3 pre-RoPE (2.2e-3 post-RoPE): the max logit change tracks the codes'
// relative precision (half a step over a group's range, |k| up to 30) times the
// logits' size (up to 19); -kivi-b8-prerope gives 2.8e-4, 16-bit values alone
// (k32v16) 1.9e-4. Those are pinned in bands.
TEST(KvModel, PreRopeWithSixteenBitCodes) {
  REQUIRE_STORIES();
  const auto toks = tokens(200);
  const auto fp = logits_with(st->model, toks, "fp32");
  EXPECT_LOGITS_NEAR(logits_with(st->model, toks, "k32v32-prerope"), fp, 1e-5);
  size_t at = 0;
  const double post = max_abs_diff(logits_with(st->model, toks, "k16v16"), fp, &at);
  const double pre = max_abs_diff(logits_with(st->model, toks, "k16v16-prerope"), fp, &at);
  EXPECT_GT(pre, 1e-3);  // measured 1.9e-3 (2.2e-3 post-RoPE)
  EXPECT_LT(pre, 3e-3);
  EXPECT_GT(post, 1e-3);
  EXPECT_LT(post, 3e-3);
  EXPECT_LOGITS_NEAR(logits_with(st->model, toks, "k16v16-kivi-b2-prerope-g2"), fp, 1e-4);  // measured 1.5e-5

  // Keys: pre-RoPE rows of 4 heads of 8 at 50 positions, coded, read, rotated.
  const ModelConfig& c = st->loaded.config;
  const int n = 50, width = c.kv_dim();
  std::vector<float> keys(static_cast<size_t>(n) * width);
  std::mt19937_64 rng(3);
  std::normal_distribution<float> d(0.0f, 8.0f);
  for (float& k : keys) k = d(rng);
  auto spec = parse_kv_spec("k16v16-prerope");
  ASSERT_TRUE(spec.ok());
  auto cache = QuantizedKvCache::create(*spec, KvCacheShape{1, n, c.n_kv_heads, c.head_dim});
  ASSERT_TRUE(cache.ok());
  ASSERT_TRUE((*cache)->layout().keys_before_rope);
  ASSERT_TRUE((*cache)->write(0, 0, n, keys.data(), keys.data()).ok());
  std::vector<float> back(keys.size()), values(keys.size());
  (*cache)->read(0, n, back.data(), values.data());
  const std::vector<double> inv_freq = rope_inverse_frequencies(c, st->loaded.weights.rope_freq_factors);
  for (int p = 0; p < n; ++p) {
    float* exact = keys.data() + static_cast<int64_t>(p) * width;
    float* got = back.data() + static_cast<int64_t>(p) * width;
    for (int h = 0; h < c.n_kv_heads; ++h) {  // the group of a head: its half step
      const auto [mn, mx] = std::minmax_element(exact + h * c.head_dim, exact + (h + 1) * c.head_dim);
      const double half_step = 0.5 * (*mx - *mn) / 65535 + 1e-6 * std::max(std::fabs(*mn), std::fabs(*mx));
      std::vector<float> e(exact + h * c.head_dim, exact + (h + 1) * c.head_dim);
      std::vector<float> g(got + h * c.head_dim, got + (h + 1) * c.head_dim);
      apply_rope(e.data(), 1, c.head_dim, p, c.rope_layout, inv_freq);
      apply_rope(g.data(), 1, c.head_dim, p, c.rope_layout, inv_freq);
      for (int i = 0; i < c.head_dim; ++i) {
        ASSERT_LE(std::fabs(e[i] - g[i]), std::sqrt(2.0) * half_step) << "position " << p << " head " << h << " dim " << i;
      }
    }
  }
}

// Dense-and-sparse with p = 100% keeps every element in the side list, and a
// residual window or sink count covering the sequence keeps every position in
// FP32: the logits equal the FP32 cache's, bit for bit where the attention runs
// the same BLAS calls, and to float rounding where a batch's exact band is
// scored separately (a window, or KIVI's uncoded block; the stored rows are
// bit-exact either way, KvStream.SinksAndResidualWindowAreBitExact).
TEST(KvModel, AllOutliersOrAllWindowIsExact) {
  REQUIRE_STORIES();
  const auto toks = tokens(100);
  const auto fp = logits_with(st->model, toks, "fp32");
  EXPECT_EQ(logits_with(st->model, toks, "k2v2-sparse100"), fp);
  EXPECT_EQ(logits_with(st->model, toks, "k2v2-sink100"), fp);
  EXPECT_LOGITS_NEAR(logits_with(st->model, toks, "k2v2-kivi-b8-sparse100"), fp, 5e-5);
  EXPECT_LOGITS_NEAR(logits_with(st->model, toks, "k2v2-r100"), fp, 5e-5);
}

TEST(KvModel, QualityOrdersByBits) {
  REQUIRE_STORIES();
  const auto toks = tokens(200);
  const auto fp = logits_with(st->model, toks, "fp32");
  size_t at = 0;
  const double d8 = max_abs_diff(logits_with(st->model, toks, "k8v8"), fp, &at);
  const double d4 = max_abs_diff(logits_with(st->model, toks, "k4v4"), fp, &at);
  const double d2 = max_abs_diff(logits_with(st->model, toks, "k2v2"), fp, &at);
  EXPECT_LT(d8, d4);
  EXPECT_LT(d4, d2);
}

// Decoding token by token through a coded cache (residual window, sinks, KIVI's
// uncoded block, pre-RoPE, rotation) gives the batched pass's last logits, up to
// codes that land on the neighbouring code. The two passes compute the same keys
// and values in other float orders (GEMV against GEMM, and OpenBLAS picks its
// sgemm kernel per CPU), so they agree to a few ulps; a value that close to a
// code boundary takes the neighbouring code in one of them: one step off, where
// the coding leaves every element within half a step. The changed row moves the
// later layers' inputs and flips more codes (eval/perplexity.h: a coded cache is
// chaotic under float rounding). The difference is then a second coding error on
// a small part of the elements, so it moves the logits by a small fraction of
// what the coding itself moves them, D = max |batched − FP32| (0.37 and 0.46
// here). Measured: at most 1.0% of D (k3v3 on OpenBLAS's Haswell sgemm with the
// AVX-512 fused decode; 0.05% with the AVX2 kernels; 0.003% where no code
// flips). The band is 5% of D. A query that reads one position coded where it
// should read it exact (the window's first exact position off by one) moves the
// logits by 34% and 42% of D.
TEST(KvModel, DecodingThroughAQuantizedCacheMatchesTheBatchedPass) {
  REQUIRE_STORIES();
  const auto toks = tokens(60);
  const int vocab = st->model.config().vocab_size;
  const auto fp = logits_with(st->model, toks, "fp32");
  const std::vector<float> fp_last(fp.end() - vocab, fp.end());
  for (const char* text : {"k4v4-r8-sink2", "k3v3-kivi-b8-r4-prerope-rot"}) {
    auto spec = parse_kv_spec(text);
    ASSERT_TRUE(spec.ok());
    const auto batched = logits_with(st->model, toks, text);
    auto cache = st->model.make_cache(60, make_kv_cache_factory(*spec));
    ASSERT_TRUE(cache.ok());
    ThreadPool pool(2);
    std::vector<float> step(vocab);
    ForwardOptions last_only;
    last_only.all_logits = false;
    for (int i = 0; i < 60; ++i) {
      ASSERT_TRUE(st->model.forward(&toks[i], 1, i, **cache, step.data(), pool, last_only).ok());
    }
    const std::vector<float> last(batched.end() - vocab, batched.end());
    size_t at = 0;
    const double coding = max_abs_diff(last, fp_last, &at);
    EXPECT_GT(coding, 0.1) << text << ": the coded cache is in use";
    EXPECT_LOGITS_NEAR(step, last, 0.05 * coding);
  }
}

TEST(KvModel, GenerateReportsTheCache) {
  REQUIRE_STORIES();
  auto spec = parse_kv_spec("k4v4");
  ASSERT_TRUE(spec.ok());
  GenerateOptions options;
  options.max_new_tokens = 8;
  options.stop_at_eos = false;
  options.kv_cache = make_kv_cache_factory(*spec);
  ThreadPool pool(2);
  auto r = generate(st->model, *st->loaded.tokenizer, {1, 403, 407, 261, 378}, options, pool);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->tokens.size(), 8u);
  // stories260K: 5 layers, 4 KV heads of 8: per layer and tensor 32 4-bit codes + 4 groups x 4 bytes.
  EXPECT_DOUBLE_EQ(r->kv_bytes_per_token, 5 * 2 * (16 + 16));
}

TEST(KvNuq, LloydKnownAnswers) {
  LloydOptions free_ends;
  free_ends.pin_ends = false;
  // Samples on 4 points: 4 free levels land on them.
  std::vector<float> pts;
  for (int i = 0; i < 400; ++i) pts.push_back(std::array<float, 4>{-0.9f, -0.2f, 0.1f, 0.7f}[i % 4]);
  auto levels = fit_lloyd_codebook(pts, {}, 4, -1, 1, free_ends);
  ASSERT_TRUE(levels.ok());
  EXPECT_EQ(*levels, (std::vector<float>{-0.9f, -0.2f, 0.1f, 0.7f}));
  EXPECT_EQ(codebook_mse(pts, {}, *levels), 0.0);
  // Uniform samples: the uniform grid of cell centres (-0.75, -0.25, 0.25, 0.75).
  std::vector<float> uni;
  for (int i = 0; i < 4000; ++i) uni.push_back(-1.0f + (i + 0.5f) * 2.0f / 4000);
  levels = fit_lloyd_codebook(uni, {}, 4, -1, 1, free_ends);
  ASSERT_TRUE(levels.ok());
  for (int j = 0; j < 4; ++j) EXPECT_NEAR((*levels)[j], -0.75 + 0.5 * j, 1e-3);
  // With the ends pinned to -1 and 1 the uniform grid (-1, -1/3, 1/3, 1) is the fixed point:
  // a = centroid of [(a - 1) / 2, 0) = (a - 1) / 4 gives a = -1/3.
  levels = fit_lloyd_codebook(uni, {}, 4, -1, 1);
  ASSERT_TRUE(levels.ok());
  EXPECT_EQ((*levels)[0], -1.0f);
  EXPECT_EQ((*levels)[3], 1.0f);
  EXPECT_NEAR((*levels)[1], -1.0 / 3, 1e-3);
  EXPECT_NEAR((*levels)[2], 1.0 / 3, 1e-3);
  // Gaussian-like samples: never worse than the uniform grid it starts from.
  std::vector<float> g;
  for (int i = 1; i < 2000; ++i) g.push_back(std::tanh(0.5f * std::tan(3.14159265f * (i / 2000.0f - 0.5f))));
  levels = fit_lloyd_codebook(g, {}, 8, -1, 1);
  ASSERT_TRUE(levels.ok());
  std::vector<float> grid(8);
  for (int j = 0; j < 8; ++j) grid[j] = -1.0f + 2.0f * j / 7;
  EXPECT_LT(codebook_mse(g, {}, *levels), codebook_mse(g, {}, grid));
  // Weights pull a level: all weight on one point.
  auto w = fit_lloyd_codebook({-0.5f, 0.5f, 0.6f}, {1, 0, 1}, 2, -1, 1, free_ends);
  ASSERT_TRUE(w.ok());
  EXPECT_FLOAT_EQ((*w)[1], 0.6f);
  EXPECT_FALSE(fit_lloyd_codebook({}, {}, 4, -1, 1).ok());
}

TEST(KvNuq, CalibratedCodebooksBeatTheIntegerGridOnTheModel) {
  REQUIRE_STORIES();
  auto spec = parse_kv_spec("k2v2-nuq");
  ASSERT_TRUE(spec.ok());
  ThreadPool pool(2);
  auto books = fit_kv_codebooks(st->model, {tokens(128, 7), tokens(128, 8)}, *spec, pool);
  ASSERT_TRUE(books.ok()) << books.status().message();
  ASSERT_EQ(books->layers.size(), 5u);
  for (const KvLayerCodebooks& l : books->layers) {
    ASSERT_EQ(l.key.size(), 4u);
    ASSERT_EQ(l.value.size(), 4u);
    EXPECT_TRUE(std::is_sorted(l.key.begin(), l.key.end()));
  }
  // On held-out tokens the fitted 2-bit codebooks change the logits less than the uniform 2-bit grid.
  const auto toks = tokens(200, 99);
  const auto fp = logits_with(st->model, toks, "fp32");
  size_t at = 0;
  double mse_int = 0, mse_nuq = 0;
  const auto li = logits_with(st->model, toks, "k2v2");
  const auto ln = logits_with(st->model, toks, "k2v2-nuq", *books);
  for (size_t i = 0; i < fp.size(); ++i) {
    mse_int += (li[i] - fp[i]) * (li[i] - fp[i]);
    mse_nuq += (ln[i] - fp[i]) * (ln[i] - fp[i]);
  }
  EXPECT_LT(mse_nuq, mse_int);
  (void)at;
}

TEST(KvTuner, ChoiceIsTheKnapsackOptimum) {
  // Two layers; layer 0's keys are very sensitive, layer 1's values a little.
  KvSensitivity s;
  s.bits = {2, 4, 8};
  s.key = {{10.0, 1.0, 0.0}, {0.5, 0.1, 0.0}};
  s.value = {{0.2, 0.1, 0.0}, {1.0, 0.3, 0.0}};
  auto bits = choose_kv_bits(s, 4.0);  // 16 bits for the 4 tensors
  ASSERT_TRUE(bits.ok()) << bits.status().message();
  // Enumerated by hand: (8,2),(2,4) costs 0+0.2+0.5+0.3 = 1.0; (4,2),(4,4)... the optimum is (8,2),(2,4).
  EXPECT_EQ(*bits, (std::vector<std::pair<int, int>>{{8, 2}, {2, 4}}));
  auto all8 = choose_kv_bits(s, 8.0);
  ASSERT_TRUE(all8.ok());
  EXPECT_EQ(*all8, (std::vector<std::pair<int, int>>{{8, 8}, {8, 8}}));
  EXPECT_FALSE(choose_kv_bits(s, 1.5).ok());
}

TEST(KvTuner, MeasuredSensitivityFallsWithBitsAndTheChoiceMeetsTheBudget) {
  REQUIRE_STORIES();
  auto base = parse_kv_spec("k4v4");
  ASSERT_TRUE(base.ok());
  ThreadPool pool(2);
  auto sens = measure_kv_sensitivity(st->model, {tokens(64, 3)}, *base, {2, 8}, pool);
  ASSERT_TRUE(sens.ok()) << sens.status().message();
  for (int l = 0; l < 5; ++l) {
    EXPECT_GT(sens->key[l][0], sens->key[l][1]) << "layer " << l;
    EXPECT_GT(sens->value[l][0], sens->value[l][1]) << "layer " << l;
  }
  auto bits = choose_kv_bits(*sens, 5.0);
  ASSERT_TRUE(bits.ok());
  auto tuned = kv_spec_with_layer_bits(*base, *bits);
  ASSERT_TRUE(tuned.ok());
  EXPECT_LE(tuned->average_bits(5), 5.0);
  EXPECT_TRUE(check_kv_spec(*tuned, st->model.kv_cache_shape(16)).ok());
}

}  // namespace
}  // namespace lowbit
