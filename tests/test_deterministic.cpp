// The deterministic forward (model/deterministic.h, kernels/fixed_order.h):
//   FixedOrderKernels: every ISA variant gives fixed_order_dot's bits, at awkward
//     lengths, tile shapes and row ranges; the dot is within its rounding bound of
//     the exact (double) sum; fixed_order_exp within 1 ulp (FP32) of std::exp.
//   FixedOrderLinear / attention_fixed_order: within the error bounds of FP32
//     summation of the BLAS layer / of a double reference.
//   Deterministic on stories260K: logits bit-identical across tokens per forward
//     call (1, 7, all), threads (1, 2, 3) and the ISA levels this CPU runs, and
//     near the default forward's; refusals name the layer or cache.
//   LogitDiff (eval/logit_diff.h): the measures on rows with known answers, and a
//     recorded file compared with itself and with a changed run.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "eval/logit_diff.h"
#include "kernels/fixed_order.h"
#include "model/attention_fixed_order.h"
#include "model/deterministic.h"
#include "model/fixed_order_linear.h"
#include "model/llama_model.h"
#include "model/loader.h"
#include "model_writers.h"
#include "test_util.h"

namespace lowbit {
namespace {

constexpr double kU = 0x1p-24;  // unit roundoff of FP32

// γ_m = m·u / (1 − m·u): the bound of m successive FP32 roundings (Higham, Thm 3.1).
double gamma(int64_t m) { return m * kU / (1.0 - m * kU); }

std::vector<Isa> levels() {
  std::vector<Isa> out;
  const CpuFeatures cpu = detect_cpu_features();
  for (Isa isa : {Isa::kGeneric, Isa::kAvx2, Isa::kAvx512}) {
    if (isa_supported(isa, cpu) && isa <= active_isa()) out.push_back(isa);
  }
  return out;
}

TEST(FixedOrderKernels, EveryLevelGivesTheReferenceBits) {
  for (int64_t in : {1, 3, 7, 15, 16, 17, 31, 32, 33, 64, 255, 4097}) {
    const int64_t rows = 7, tokens = 5;
    const std::vector<float> w = testing::gaussian(rows * in, 1 + static_cast<uint32_t>(in));
    const std::vector<float> x = testing::gaussian(tokens * in, 2 + static_cast<uint32_t>(in));
    for (Isa isa : levels()) {
      const FixedOrderKernels k = fixed_order_kernels(isa);
      // Every token count (tiles of 4, 2 and 1) and a row range starting odd.
      for (int64_t n = 1; n <= tokens; ++n) {
        std::vector<float> y(static_cast<size_t>(n * rows), -1.0f);
        k.rows(w.data(), in, 1, rows, x.data(), n, y.data(), rows);
        for (int64_t t = 0; t < n; ++t) {
          EXPECT_EQ(y[t * rows], -1.0f) << "row 0 is outside [1, rows)";
          for (int64_t r = 1; r < rows; ++r) {
            const float ref = fixed_order_dot(x.data() + t * in, w.data() + r * in, in);
            ASSERT_EQ(std::bit_cast<uint32_t>(y[t * rows + r]), std::bit_cast<uint32_t>(ref))
                << k.name << " in " << in << " tokens " << n << " t " << t << " r " << r;
          }
        }
      }
    }
  }
}

TEST(FixedOrderKernels, DotWithinItsRoundingBound) {
  // Each lane sums ceil(n/16) rounded products, then 4 tree levels: every product
  // passes through at most m = ceil(n/16) + 4 additions and 1 multiplication, so
  // |dot − Σab| ≤ γ_{m+1} Σ|a||b| (Higham §3.1, any summation order of that depth).
  for (int64_t n : {1, 5, 16, 33, 1000, 4097}) {
    const std::vector<float> a = testing::gaussian(n, 10), b = testing::gaussian(n, 11);
    double exact = 0.0, abs_sum = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      exact += static_cast<double>(a[i]) * b[i];
      abs_sum += std::fabs(static_cast<double>(a[i]) * b[i]);
    }
    const int64_t m = (n + 15) / 16 + 4;
    EXPECT_LE(std::fabs(fixed_order_dot(a.data(), b.data(), n) - exact), gamma(m + 1) * abs_sum) << "n " << n;
  }
  // Known answer: 1·1 over 37 elements is 37 exactly.
  const std::vector<float> ones(37, 1.0f);
  EXPECT_EQ(fixed_order_dot(ones.data(), ones.data(), 37), 37.0f);
}

TEST(FixedOrderKernels, ExpWithinOneUlpOfLibm) {
  EXPECT_EQ(fixed_order_exp(0.0), 1.0);
  EXPECT_EQ(fixed_order_exp(-1000.0), 0.0);
  EXPECT_TRUE(std::isinf(fixed_order_exp(1000.0)));
  EXPECT_TRUE(std::isnan(fixed_order_exp(std::numeric_limits<double>::quiet_NaN())));
  // In double: the polynomial's truncation (< 5e-18) and ~16 roundings of Horner
  // and the reduction stay below 8 ulp (double) of libm's correctly rounded-or-near e^x.
  for (double x = -100.0; x <= 88.0; x += 0.0137) {
    const double ref = std::exp(x), got = fixed_order_exp(x);
    EXPECT_LE(std::fabs(got - ref), 8 * 0x1p-52 * ref) << "x " << x;
    // Rounded to FP32: within one FP32 ulp of libm's result rounded to FP32.
    const float gf = static_cast<float>(got), rf = static_cast<float>(ref);
    EXPECT_LE(std::fabs(gf - rf), std::nextafter(rf, INFINITY) - rf) << "x " << x;
  }
}

TEST(FixedOrderKernels, SoftmaxAndSwiglu) {
  // Equal scores: each probability is 1/8 exactly (e^0 = 1, the sum 8, 1/8 exact).
  std::vector<float> eq(8, 3.5f);
  fixed_order_softmax(eq.data(), 8);
  for (float p : eq) EXPECT_EQ(p, 0.125f);
  // Against the double formula: each e^· rounded to FP32 (u), the sum in double,
  // the quotient rounded to FP32 (u): |p − p*| ≤ 3u·p* (first order).
  std::vector<float> s = testing::gaussian(100, 3, 4.0f);
  std::vector<double> ref(s.size());
  const float mx = *std::max_element(s.begin(), s.end());
  double sum = 0.0;
  for (size_t i = 0; i < s.size(); ++i) sum += ref[i] = std::exp(static_cast<double>(s[i]) - mx);
  fixed_order_softmax(s.data(), static_cast<int64_t>(s.size()));
  for (size_t i = 0; i < s.size(); ++i) EXPECT_LE(std::fabs(s[i] - ref[i] / sum), 3 * kU * ref[i] / sum) << i;
  // silu(0) = 0, silu(x)·1 → x for large x (e^-x < u), -0 · up = 0 for large negative.
  std::vector<float> g = {0.0f, 40.0f, -200.0f}, up = {1.0f, 1.0f, 1.0f};
  fixed_order_swiglu(g.data(), up.data(), 3);
  EXPECT_EQ(g[0], 0.0f);
  EXPECT_EQ(g[1], 40.0f);
  EXPECT_EQ(g[2], 0.0f);
}

TEST(FixedOrderLinear, WithinSummationBoundOfBlas) {
  // Both are FP32 dot products of length K in some order: each within γ_K Σ|x||w|
  // of the exact sum (the fixed order's depth ceil(K/16)+5 ≤ K), so they differ by
  // at most 2 γ_K Σ|x||w| per element; the same for the bias add (one more rounding).
  const int64_t out = 37, in = 300, n = 9;
  Matrix m;
  m.rows = out;
  m.cols = in;
  m.data = testing::gaussian(out * in, 21);
  m.bias = testing::gaussian(out, 22);
  const std::vector<float> x = testing::gaussian(n * in, 23);
  ThreadPool pool(3);
  std::vector<float> yd(n * out), yf(n * out);
  DenseLinear(m).forward(x.data(), n, yd.data(), pool);
  FixedOrderLinear(m, active_isa()).forward(x.data(), n, yf.data(), pool);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t o = 0; o < out; ++o) {
      double abs_sum = std::fabs(m.bias[o]);
      for (int64_t i = 0; i < in; ++i) abs_sum += std::fabs(static_cast<double>(x[t * in + i]) * m.data[o * in + i]);
      EXPECT_LE(std::fabs(yd[t * out + o] - yf[t * out + o]), 2 * gamma(in + 1) * abs_sum) << t << ", " << o;
    }
  }
}

TEST(AttentionFixedOrder, WithinBoundOfDoubleReference) {
  // Per query and head, against the same attention in double:
  //   scores: |s − s*| ≤ δ = γ_{hd+1}·Σ|q||k|·scale + u·|s*| (the dot, then the scale);
  //   P: each weight e^{s_p − max} carries the score errors twice (s_p and max) and
  //      3u of softmax rounding: |P − P*| ≤ (e^{2δ_max} − 1 + 3u)·P* to first order;
  //   out: Σ_p P_p v_p in FP32 (visible + 1 roundings): |o − o*| ≤
  //      Σ_p |P_p − P*_p||v_p| + γ_{visible+1} Σ_p P_p |v_p|.
  ModelConfig c;
  c.dim = 64;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 16;
  const int n_pos = 21, pos = 13, n = n_pos - pos;
  const std::vector<float> q = testing::gaussian(n * c.q_dim(), 31, 2.0f);
  const std::vector<float> k = testing::gaussian(n_pos * c.kv_dim(), 32, 2.0f);
  const std::vector<float> v = testing::gaussian(n_pos * c.kv_dim(), 33);
  std::vector<float> out(n * c.q_dim());
  ThreadPool pool(2);
  attention_fixed_order(c, q.data(), n, pos, k.data(), v.data(), out.data(), pool, active_isa());
  const double scale = 1.0 / std::sqrt(16.0);
  for (int t = 0; t < n; ++t) {
    for (int h = 0; h < c.n_heads; ++h) {
      const int kvh = h / 2, visible = pos + t + 1;
      std::vector<double> s(visible), delta(visible);
      for (int p = 0; p < visible; ++p) {
        double dot = 0.0, abs_sum = 0.0;
        for (int i = 0; i < 16; ++i) {
          const double prod = static_cast<double>(q[t * c.q_dim() + h * 16 + i]) * k[p * c.kv_dim() + kvh * 16 + i];
          dot += prod;
          abs_sum += std::fabs(prod);
        }
        s[p] = dot * scale;
        delta[p] = gamma(17) * abs_sum * scale + kU * std::fabs(s[p]);
      }
      const double mx = *std::max_element(s.begin(), s.end());
      const double dmax = *std::max_element(delta.begin(), delta.end());
      double sum = 0.0;
      std::vector<double> pr(visible);
      for (int p = 0; p < visible; ++p) sum += pr[p] = std::exp(s[p] - mx);
      const double rel_p = std::exp(2 * dmax) - 1 + 3 * kU;
      for (int i = 0; i < 16; ++i) {
        double o = 0.0, bound = 0.0;
        for (int p = 0; p < visible; ++p) {
          const double vp = v[p * c.kv_dim() + kvh * 16 + i];
          o += pr[p] / sum * vp;
          bound += (rel_p + gamma(visible + 1) * (1 + rel_p)) * pr[p] / sum * std::fabs(vp);
        }
        EXPECT_LE(std::fabs(out[t * c.q_dim() + h * 16 + i] - o), bound) << t << " " << h << " " << i;
      }
    }
  }
}

// stories260K (5 layers, dim 64, 8 heads / 4 kv heads, vocab 512).
class Deterministic : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = testing::shared_path("models/stories260K/stories260K.gguf");
    if (path_.empty()) GTEST_SKIP() << "shared test material missing (stories260K)";
    tokens_.resize(60);
    for (size_t i = 0; i < tokens_.size(); ++i) tokens_[i] = static_cast<int32_t>((i * 131 + 7) % 512);
  }

  LlamaModel model(bool deterministic, Isa isa) {
    Expected<LoadedModel> loaded = load_model(path_, {});
    EXPECT_TRUE(loaded.ok()) << loaded.status().message();
    Expected<LlamaModel> m = LlamaModel::create(loaded->config, std::move(loaded->weights));
    EXPECT_TRUE(m.ok()) << m.status().message();
    if (deterministic) {
      const Status s = make_deterministic(*m, isa);
      EXPECT_TRUE(s.ok()) << s.message();
    }
    return std::move(m).value();
  }

  // Logits [n, vocab] with `batch` tokens per forward call through one FP32 cache.
  std::vector<float> logits(const LlamaModel& m, int batch, int threads) {
    ThreadPool pool(threads);
    const int n = static_cast<int>(tokens_.size()), vocab = m.config().vocab_size;
    std::unique_ptr<KvCache> cache = m.make_fp32_cache(n);
    std::vector<float> out(static_cast<size_t>(n) * vocab);
    for (int b0 = 0; b0 < n; b0 += batch) {
      const int len = std::min(batch, n - b0);
      const Status s = m.forward(tokens_.data() + b0, len, b0, *cache, out.data() + static_cast<size_t>(b0) * vocab, pool);
      EXPECT_TRUE(s.ok()) << s.message();
    }
    return out;
  }

  std::string path_;
  std::vector<int32_t> tokens_;
};

TEST_F(Deterministic, BitIdenticalAcrossBatchThreadsAndIsa) {
  const int n = static_cast<int>(tokens_.size());
  const std::vector<float> ref = logits(model(true, Isa::kGeneric), n, 1);
  for (Isa isa : levels()) {
    const LlamaModel m = model(true, isa);
    for (int batch : {1, 7, n}) {
      for (int threads : {1, 2, 3}) {
        const std::vector<float> got = logits(m, batch, threads);
        ASSERT_EQ(std::memcmp(got.data(), ref.data(), ref.size() * sizeof(float)), 0)
            << "isa " << isa_name(isa) << " batch " << batch << " threads " << threads;
      }
    }
  }
}

TEST_F(Deterministic, NearTheDefaultForward) {
  // Both forwards compute the same function in FP32 with other reduction orders
  // (BLAS sgemm/sgemv, the vectorized exp): per operation they differ by at most
  // 2γ_K relative to Σ|terms| (K ≤ 172, the longest sum: down_proj's input; the
  // attention's ≤ 60 positions; exp ≤ 4 ulp) ≈ 2.1e-5. A block chains 7 such
  // operations (norm, q/k/v, scores, softmax, P·V, o, norm, gate/up, SwiGLU,
  // down), 5 blocks and the head ≈ 40; if no operation amplified a relative
  // perturbation by more than 2 (RMSNorm renormalises, softmax is 1/2-Lipschitz in
  // the max norm), the logits' relative RMS distance stays below
  // 40 · 2 · 2.1e-5 ≈ 1.7e-3. Not a rigorous bound: it assumes that gain.
  const int n = static_cast<int>(tokens_.size());
  const std::vector<float> det = logits(model(true, active_isa()), n, 2);
  const std::vector<float> def = logits(model(false, active_isa()), n, 2);
  double d = 0.0, r = 0.0;
  for (size_t i = 0; i < det.size(); ++i) {
    d += (det[i] - def[i]) * static_cast<double>(det[i] - def[i]);
    r += static_cast<double>(def[i]) * def[i];
  }
  const double rel = std::sqrt(d / r);
  EXPECT_LE(rel, 40 * 2 * 2 * gamma(173));
  EXPECT_GT(rel, 0.0) << "the default forward uses other orders; equal bits would mean one path ran twice";
}

TEST_F(Deterministic, RefusesACacheThatKeepsKeysBeforeRope) {
  const LlamaModel m = model(true, active_isa());
  // A cache that keeps keys before RoPE stands for every layout the forward refuses.
  class PreRopeCache : public Fp32KvCache {
   public:
    using Fp32KvCache::Fp32KvCache;
    KvCacheLayout layout() const override { return {.keys_before_rope = true}; }
  };
  PreRopeCache cache(m.config().n_layers, 8, m.config().kv_dim());
  ThreadPool pool(1);
  std::vector<float> out(m.config().vocab_size * 2);
  const Status s = m.forward(tokens_.data(), 2, 0, cache, out.data(), pool);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("FP32 KV cache"), std::string::npos) << s.message();
}

TEST_F(Deterministic, RefusesLayersWithoutFixedOrderKernel) {
  // A layer that is neither an FP32 matrix nor a packed weight (an activation
  // quantizer, an online rotation, ...): the error names it.
  class Opaque : public Linear {
   public:
    Opaque(int64_t in, int64_t out) : in_(in), out_(out) {}
    int64_t in_features() const override { return in_; }
    int64_t out_features() const override { return out_; }
    void forward(const float*, int64_t, float*, ThreadPool&) const override {}
    uint64_t weight_bytes() const override { return 0; }
    std::string describe() const override { return "opaque"; }

   private:
    int64_t in_, out_;
  };
  LlamaModel m = model(false, active_isa());
  const Linear* up = m.find_linear("layers.2.up_proj");
  ASSERT_TRUE(m.replace_linear("layers.2.up_proj", std::make_unique<Opaque>(up->in_features(), up->out_features())).ok());
  const Status s = make_deterministic(m, active_isa());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("layers.2.up_proj"), std::string::npos) << s.message();
}

TEST_F(Deterministic, CliLogitsEqualAcrossSettings) {
  // End to end: ppl --deterministic records its logits at the whole chunk, 2 threads and
  // the best level; --batch 7, 3 threads at the generic level compares bit-identical, and
  // the default forward at --batch 7 is not refused (and reports its own distance).
  const std::string text = testing::shared_path("data/tinystories/tinystories_validation_head.txt");
  if (text.empty()) GTEST_SKIP() << "shared test material missing (tinystories)";
  testing::ScopedTempDir dir("determ_cli");
  const std::string rec = dir.file("ref.logits");
  const std::string common = path_ + " --text " + text + " --ctx 64 --chunks 3";
  const testing::CommandResult save = testing::run_lowbit("ppl " + common + " --deterministic -t 2 --save-logits " + rec);
  ASSERT_EQ(save.exit_code, 0) << save.output;
  const testing::CommandResult cmp = testing::run_lowbit(
      "ppl " + common + " --deterministic -t 3 --batch 7 --compare-logits " + rec, "LOWBIT_ISA=generic");
  ASSERT_EQ(cmp.exit_code, 0) << cmp.output;
  // 3 chunks × (64 − 1 − 32) scored positions, all bit-identical, nothing moved.
  EXPECT_NE(cmp.output.find("93 positions, 93 bit-identical; max |delta logit| 0;"), std::string::npos) << cmp.output;
  const testing::CommandResult def = testing::run_lowbit("ppl " + common + " -t 3 --batch 7 --compare-logits " + rec);
  ASSERT_EQ(def.exit_code, 0) << def.output;
  EXPECT_NE(def.output.find("93 positions"), std::string::npos) << def.output;
  // The deterministic forward refuses a quantized KV cache before running.
  const testing::CommandResult kv = testing::run_lowbit("ppl " + common + " --deterministic --kv k8v8");
  EXPECT_EQ(kv.exit_code, 1) << kv.output;
  EXPECT_NE(kv.output.find("--deterministic"), std::string::npos) << kv.output;
}

TEST(LogitDiff, KnownAnswers) {
  const std::vector<float> a = {1.0f, 3.0f, 2.0f, -1.0f};
  LogitDiff same;
  add_logit_row_diff(a.data(), a.data(), 4, same);
  EXPECT_EQ(same.rows, 1);
  EXPECT_EQ(same.identical_rows, 1);
  EXPECT_EQ(same.max_abs_delta, 0.0);
  EXPECT_EQ(same.kld_sum, 0.0);
  EXPECT_EQ(same.flipped_argmax, 0);
  // A constant shift: the softmax is unchanged (KLD 0 up to double rounding).
  const std::vector<float> shifted = {1.5f, 3.5f, 2.5f, -0.5f};
  LogitDiff shift;
  add_logit_row_diff(a.data(), shifted.data(), 4, shift);
  EXPECT_EQ(shift.identical_rows, 0);
  EXPECT_EQ(shift.max_abs_delta, 0.5);
  EXPECT_LE(std::fabs(shift.kld_sum), 1e-15);
  EXPECT_EQ(shift.flipped_argmax, 0);
  // Two logits swapped: KL(p || q) = (p1 − p2)(l1 − l2) = (p1 − p2)·1 for the swapped pair.
  const std::vector<float> swapped = {1.0f, 2.0f, 3.0f, -1.0f};
  LogitDiff swap;
  add_logit_row_diff(a.data(), swapped.data(), 4, swap);
  EXPECT_EQ(swap.max_abs_delta, 1.0);
  EXPECT_EQ(swap.flipped_argmax, 1);
  const double z = std::exp(1.0) + std::exp(3.0) + std::exp(2.0) + std::exp(-1.0);
  EXPECT_NEAR(swap.kld_sum, (std::exp(3.0) - std::exp(2.0)) / z, 1e-12);
}

TEST(LogitDiff, RecordThenCompare) {
  testing::ScopedTempDir dir("logit_diff");
  const std::string path = dir.file("l.bin");
  const int vocab = 5;
  const std::vector<float> rows = testing::gaussian(3 * vocab, 41);
  {
    Expected<LogitRecorder> r = LogitRecorder::create(path, vocab);
    ASSERT_TRUE(r.ok()) << r.status().message();
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(r->add(rows.data() + i * vocab).ok());
    ASSERT_TRUE(r->commit().ok());
  }
  Expected<LogitComparer> c = LogitComparer::open(path, vocab);
  ASSERT_TRUE(c.ok()) << c.status().message();
  std::vector<float> changed = rows;
  changed[vocab + 2] += 0.25f;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(c->add(changed.data() + i * vocab).ok());
  EXPECT_FALSE(c->add(changed.data()).ok()) << "a fourth row is past the record";
  Expected<LogitDiff> d = c->finish();
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->rows, 3);
  EXPECT_EQ(d->identical_rows, 2);
  EXPECT_EQ(d->max_abs_delta, 0.25);
  // Another vocab, and fewer rows than recorded, are errors.
  EXPECT_FALSE(LogitComparer::open(path, vocab + 1).ok());
  Expected<LogitComparer> short_run = LogitComparer::open(path, vocab);
  ASSERT_TRUE(short_run->add(rows.data()).ok());
  EXPECT_FALSE(short_run->finish().ok());
}

}  // namespace
}  // namespace lowbit
