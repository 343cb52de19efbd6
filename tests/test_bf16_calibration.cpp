// The BF16 calibration arithmetic (--calib-arith bf16): Bf16Linear and attention_bf16
// against FP64 within the bounds derived from BF16 rounding (2^-9 relative per
// operand) and FP32 sums (γ_K); the kBf16 Hessian within its bound and independent
// of the thread split; `lowbit quantize --calib-arith bf16` on stories260K writes
// the same file at 1 and 2 threads, close to the FP32 calibration's.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <vector>

#include "kernels/gemm_bf16.h"
#include "model/attention_bf16.h"
#include "model/bf16_linear.h"
#include "pipeline/activation_stats.h"
#include "model_writers.h"
#include "test_util.h"

namespace lowbit {
namespace {

constexpr double kU = 0x1.0p-24;
// |bf16(a)bf16(b) - ab| ≤ (2·2^-9 + 2^-18)|ab| for normal a, b.
constexpr double kProductRounding = 2.0 * 0x1.0p-9 + 0x1.0p-18;

using testing::gaussian;

// The kernel levels this CPU runs (the reference everywhere, AVX512_BF16 where present).
std::vector<Isa> levels() {
  std::vector<Isa> l{Isa::kGeneric};
  if (isa_supported(Isa::kAvx512Bf16, detect_cpu_features())) l.push_back(Isa::kAvx512Bf16);
  return l;
}

TEST(Bf16Linear, WithinTheRoundingBoundOfTheFp64Product) {
  const int64_t out = 45, in = 70, n = 19;
  Matrix m{.rows = out, .cols = in, .data = gaussian(out * in, 1, 0.05f), .bias = gaussian(out, 2)};
  const std::vector<float> x = gaussian(n * in, 3);
  ThreadPool pool(2);
  for (Isa isa : levels()) {
    const Bf16Linear lin(m, isa);
    EXPECT_EQ(lin.in_features(), in);
    EXPECT_EQ(lin.out_features(), out);
    std::vector<float> y(n * out);
    lin.forward(x.data(), n, y.data(), pool);
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t o = 0; o < out; ++o) {
        double exact = 0.0, magnitude = 0.0;
        for (int64_t i = 0; i < in; ++i) {
          exact += static_cast<double>(m.data[o * in + i]) * x[t * in + i];
          magnitude += std::fabs(static_cast<double>(m.data[o * in + i]) * x[t * in + i]);
        }
        const double bound = (kProductRounding + (in + 1) * kU) * magnitude + kU * std::fabs(exact + m.bias[o]);
        ASSERT_LE(std::fabs(y[t * out + o] - (exact + m.bias[o])), bound)
            << "token " << t << " row " << o << " at " << isa_name(isa);
      }
    }
  }
}

TEST(Bf16Linear, SharedInputGroupEqualsEachLayerAlone) {
  // q/k/v-like layers (one input, different widths, one with a bias) through one
  // rounding of the input give each layer's own forward bit for bit.
  const int64_t in = 70, n = 19;
  const std::vector<float> x = gaussian(n * in, 4);
  ThreadPool pool(2);
  for (Isa isa : levels()) {
    Matrix q{.rows = 45, .cols = in, .data = gaussian(45 * in, 5, 0.05f), .bias = gaussian(45, 6)};
    Matrix k{.rows = 13, .cols = in, .data = gaussian(13 * in, 7, 0.05f), .bias = {}};
    Matrix v{.rows = 32, .cols = in, .data = gaussian(32 * in, 8, 0.05f), .bias = {}};
    const Bf16Linear lq(q, isa), lk(k, isa), lv(v, isa);
    ASSERT_TRUE(lq.shares_input(lk));
    const Matrix wider{.rows = 2, .cols = in + 1, .data = gaussian(2 * (in + 1), 9), .bias = {}};
    ASSERT_FALSE(lq.shares_input(Bf16Linear(wider, isa)));
    std::vector<float> yq(n * 45), yk(n * 13), yv(n * 32), gq(n * 45), gk(n * 13), gv(n * 32);
    lq.forward(x.data(), n, yq.data(), pool);
    lk.forward(x.data(), n, yk.data(), pool);
    lv.forward(x.data(), n, yv.data(), pool);
    const Bf16Linear* group[] = {&lq, &lk, &lv};
    float* outs[] = {gq.data(), gk.data(), gv.data()};
    Bf16Linear::forward_shared_input(group, x.data(), n, outs, pool);
    EXPECT_EQ(gq, yq) << isa_name(isa);
    EXPECT_EQ(gk, yk) << isa_name(isa);
    EXPECT_EQ(gv, yv) << isa_name(isa);
  }
}

// Causal GQA over random q, k, v against the attention computed in double from the
// unrounded operands. Per query t and output element i:
//   the scores' error δ_p ≤ scale·(kProductRounding + hd·u)·Σ_d |q_d k_d| moves each
//   softmax weight by a factor within e^{±2δ}, δ = max_p δ_p; then P and v are rounded
//   (kProductRounding) and summed in FP32 (seen·u):
//   |Δout_i| ≤ ((e^{2δ} - 1) + kProductRounding + seen·u) · Σ_p P_p |v_pi|  (+ FP32 softmax, 64u).
TEST(AttentionBf16, WithinTheBoundOfTheFp64Attention) {
  ModelConfig c;
  c.dim = 64;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 16;
  for (auto [n_tokens, pos] : {std::pair{1, 0}, {7, 0}, {70, 0}, {131, 0}, {33, 40}}) {
    const int n_pos = pos + n_tokens, q_dim = c.q_dim(), kv_dim = c.kv_dim(), hd = c.head_dim;
    const std::vector<float> q = gaussian(n_tokens * q_dim, 11, 2.0f), k = gaussian(n_pos * kv_dim, 12),
                             v = gaussian(n_pos * kv_dim, 13);
    const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
    ThreadPool pool(2);
    for (Isa isa : levels()) {
      std::vector<float> out(n_tokens * q_dim, -7.0f);
      attention_bf16(c, q.data(), n_tokens, pos, k.data(), v.data(), out.data(), pool, isa);
      for (int t = 0; t < n_tokens; ++t) {
        for (int h = 0; h < c.n_heads; ++h) {
          const int kvh = h / (c.n_heads / c.n_kv_heads), visible = pos + t + 1;
          std::vector<double> s(visible), s_mag(visible);
          double smax = -1e300, delta = 0.0;
          for (int p = 0; p < visible; ++p) {
            double dot = 0.0, mag = 0.0;
            for (int d = 0; d < hd; ++d) {
              const double a = q[t * q_dim + h * hd + d], b = k[p * kv_dim + kvh * hd + d];
              dot += a * b;
              mag += std::fabs(a * b);
            }
            s[p] = dot * scale;
            delta = std::max(delta, scale * (kProductRounding + hd * kU) * mag);
            smax = std::max(smax, s[p]);
          }
          double z = 0.0;
          for (int p = 0; p < visible; ++p) z += std::exp(s[p] - smax);
          const double factor = std::expm1(2.0 * delta) + kProductRounding + (visible + 64) * kU;
          for (int d = 0; d < hd; ++d) {
            double exact = 0.0, mag = 0.0;
            for (int p = 0; p < visible; ++p) {
              const double w = std::exp(s[p] - smax) / z, val = v[p * kv_dim + kvh * hd + d];
              exact += w * val;
              mag += w * std::fabs(val);
            }
            const double got = out[t * q_dim + h * hd + d];
            ASSERT_LE(std::fabs(got - exact), factor * mag * 1.01 + 1e-30)
                << "n " << n_tokens << " pos " << pos << " token " << t << " head " << h << " dim " << d << " at "
                << isa_name(isa) << ": " << got << " vs " << exact;
          }
        }
      }
    }
  }
}

// H from BF16 inputs: within (kProductRounding + c·u)Σ|x_j x_k| of the exact sum,
// c the most tokens of one observation (its FP32 sum) plus the double sums' share;
// the channel statistics exactly the FP64 path's; a pool changes no bit.
TEST(ActivationStats, Bf16HessianWithinItsBoundAndThreadIndependent) {
  const int64_t in = 70;
  const std::vector<int64_t> chunks = {1, 7, 300, 64, 2};
  int64_t n = 0;
  for (int64_t ch : chunks) n += ch;
  const std::vector<float> x = gaussian(n * in, 9);
  ThreadPool pool(2);
  ActivationStats serial({.hessian = HessianPrecision::kBf16, .names = {}});
  ActivationStats threaded({.hessian = HessianPrecision::kBf16, .names = {}, .pool = &pool});
  ActivationStats fp64({.hessian = HessianPrecision::kFp64, .names = {}});
  int64_t t0 = 0;
  for (int64_t ch : chunks) {
    for (ActivationStats* s : {&serial, &threaded, &fp64}) s->observe("layers.0.o_proj", x.data() + t0 * in, ch, in);
    t0 += ch;
  }
  const InputStats* a = serial.find("layers.0.o_proj");
  const InputStats* b = threaded.find("layers.0.o_proj");
  const InputStats* f = fp64.find("layers.0.o_proj");
  ASSERT_TRUE(a != nullptr && b != nullptr && f != nullptr);
  EXPECT_EQ(a->hessian(), b->hessian());
  EXPECT_EQ(a->abs_sum, f->abs_sum);
  EXPECT_EQ(a->abs_max, f->abs_max);
  const std::vector<double> h = a->hessian();
  for (int64_t j = 0; j < in; ++j) {
    for (int64_t k = 0; k < in; ++k) {
      double exact = 0.0, mag = 0.0;
      for (int64_t t = 0; t < n; ++t) {
        exact += static_cast<double>(x[t * in + j]) * x[t * in + k];
        mag += std::fabs(static_cast<double>(x[t * in + j]) * x[t * in + k]);
      }
      ASSERT_LE(std::fabs(h[j * in + k] - exact), (kProductRounding + 300 * kU + n * 0x1.0p-53) * mag)
          << j << "," << k;
    }
  }
  EXPECT_STREQ(hessian_precision_name(HessianPrecision::kBf16), "bf16");
}

TEST(Bf16CalibrationCli, SameFileAtAnyThreadCountAndCloseToFp32) {
  const std::string model = testing::shared_path("models/stories260K/stories260K.gguf");
  const std::string text = testing::shared_path("data/tinystories/tinystories_validation_head.txt");
  if (model.empty() || text.empty()) GTEST_SKIP() << "shared test material missing (stories260K, tinystories)";
  testing::ScopedTempDir dir("bf16_calib");
  auto quantize = [&](const std::string& extra, const std::string& name) {
    const auto r = testing::run_lowbit("quantize " + model + " --recipe w4g128-gptq --calib " + text +
                                       " --calib-samples 8 --calib-len 128 --seed 1 --no-progress -o " +
                                       dir.file(name + ".lowbit") + " --json " + dir.file(name + ".json") + " " + extra);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    std::ifstream in(dir.file(name + ".json"));
    return nlohmann::json::parse(in);
  };
  const nlohmann::json one = quantize("-t 1 --calib-arith bf16", "t1");
  const nlohmann::json two = quantize("-t 2 --calib-arith bf16", "t2");
  const nlohmann::json fp32 = quantize("-t 2", "fp32");
  std::ifstream f1(dir.file("t1.lowbit"), std::ios::binary), f2(dir.file("t2.lowbit"), std::ios::binary);
  const std::string b1((std::istreambuf_iterator<char>(f1)), {}), b2((std::istreambuf_iterator<char>(f2)), {});
  EXPECT_FALSE(b1.empty());
  EXPECT_TRUE(b1 == b2) << "the thread count changed the BF16-calibrated file";
  EXPECT_NE(b1.find("\"arithmetic\":\"bf16\""), std::string::npos) << "the header does not record the arithmetic";
  // GPTQ's output error on the calibration inputs (H from each run's own statistics):
  // BF16 products perturb H by about 2^-8 relative, so the errors agree to a few percent.
  int compared = 0;
  for (size_t i = 0; i < fp32["modules"].size(); ++i) {
    const auto& a = fp32["modules"][i];
    const auto& b = two["modules"][i];
    ASSERT_EQ(a["name"], b["name"]);
    if (!a.contains("output_rel_error") || a["output_rel_error"].is_null()) continue;
    const double ea = a["output_rel_error"].get<double>(), eb = b["output_rel_error"].get<double>();
    EXPECT_NEAR(eb / ea, 1.0, 0.1) << a["name"];
    ++compared;
  }
  EXPECT_GT(compared, 10);
}

TEST(Bf16CalibrationCli, ConflictingFlagsAreRejected) {
  const std::string model = testing::shared_path("models/stories260K/stories260K.gguf");
  if (model.empty()) GTEST_SKIP() << "shared test material missing (stories260K)";
  testing::ScopedTempDir dir("bf16_calib_flags");
  const std::string out = dir.file("x.lowbit");
  for (const auto& [args, expected] :
       {std::pair<std::string, std::string>{"--calib-arith bf16 --hessian fp32", "--hessian fp32"},
        {"--hessian bf16", "--hessian bf16"},
        {"--calib-arith fp16", "--calib-arith"}}) {
    const auto r = testing::run_lowbit("quantize " + model + " --recipe w4g128-rtn -o " + out + " " + args);
    EXPECT_EQ(r.exit_code, 1) << args << ": " << r.output;
    EXPECT_NE(r.output.find(expected), std::string::npos) << args << ": " << r.output;
    EXPECT_FALSE(std::filesystem::exists(out)) << args;
  }
}

}  // namespace
}  // namespace lowbit
