// Fake quantization of attention probabilities (quant/attn_prob_quant.h; issue 19
// item 5): the levels of uniform, log2 and TanQ against values worked out by hand
// from their formulas, the table quantizer against the reference for every kind,
// 0 / 1 / NaN / inf, the median/MAD scale on known samples, a decoder block whose
// P is rounded to a 16-bit grid staying within the bound that rounding gives (prompt
// and decode step), and the CLI flag (its errors and a run).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <limits>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "eval/synthetic_model.h"
#include "model/decoder_block.h"
#include "model/kv_cache.h"
#include "model/ops.h"
#include "model_writers.h"
#include "quant/attn_prob_quant.h"
#include "test_util.h"

namespace lowbit {
namespace {

AttnProbQuantSpec spec(ProbLevels levels, int bits, ProbScale scale = ProbScale::kOne) {
  return AttnProbQuantSpec{levels, scale, bits};
}

void expect_levels(const AttnProbQuantSpec& s, const std::vector<double>& expected) {
  const std::vector<double> ref = prob_levels_reference(s);
  const AttnProbQuantizer q(s);
  ASSERT_EQ(ref.size(), expected.size());
  ASSERT_EQ(q.levels().size(), expected.size());
  for (size_t k = 0; k < expected.size(); ++k) {
    // The formulas in double: a few ulps of double; the table holds them rounded to float.
    EXPECT_NEAR(ref[k], expected[k], 1e-15) << attn_prob_quant_name(s) << " level " << k;
    EXPECT_EQ(q.levels()[k], static_cast<float>(expected[k])) << attn_prob_quant_name(s) << " level " << k;
  }
}

// TanQ, θ = π/3 (tan θ = √3), N = 2^b: x_k = 1/2 + atan(√3 u_k)/(2π/3), u_k = 2k/(N-1) - 1.
// b = 2: u = ±1 give 0 and 1; u = ±1/3 give atan(±1/√3) = ±π/6, so x = 1/2 ± 1/4.
TEST(AttnProbQuant, TanqLevelsTwoBitsByHand) {
  expect_levels(spec(ProbLevels::kTanq, 2), {0.0, 0.25, 0.75, 1.0});
}

// b = 3: u_k = (2k - 7)/7, x_k = 1/2 + (3/(2π))·atan(√3(2k - 7)/7); e.g. k = 3:
// atan(√3/7) = 0.2426008..., x = 1/2 - 0.1158157... = 0.3841843...; symmetric: x_{7-k} = 1 - x_k.
TEST(AttnProbQuant, TanqLevelsThreeBitsByHand) {
  std::vector<double> x(8);
  for (int k = 0; k < 8; ++k) {
    x[k] = 0.5 + 3.0 / (2.0 * std::numbers::pi) * std::atan(std::sqrt(3.0) * (2.0 * k - 7.0) / 7.0);
  }
  x[0] = 0.0;
  x[7] = 1.0;
  expect_levels(spec(ProbLevels::kTanq, 3), x);
  // The same values written out (to 1e-9), so that a change of θ shows here too.
  const double written[8] = {0.0, 0.0745689630, 0.1951102037, 0.3841842813,
                             0.6158157187, 0.8048897963, 0.9254310370, 1.0};
  for (int k = 0; k < 8; ++k) EXPECT_NEAR(x[k], written[k], 1e-9) << k;
}

TEST(AttnProbQuant, UniformAndLog2LevelsByHand) {
  expect_levels(spec(ProbLevels::kUniform, 2), {0.0, 1.0 / 3, 2.0 / 3, 1.0});
  // log2, N = 4: 0 and 2^-e for e = 2, 1, 0.
  expect_levels(spec(ProbLevels::kLog2, 2), {0.0, 0.25, 0.5, 1.0});
  expect_levels(spec(ProbLevels::kLog2, 3), {0.0, 1.0 / 64, 1.0 / 32, 1.0 / 16, 1.0 / 8, 0.25, 0.5, 1.0});
}

// Every kind at b = 2 .. 16: levels strictly increasing from 0 to 1, TanQ
// symmetric about 1/2 and finer than uniform at both ends, coarser in the middle.
// log2's levels 2^-e with e > 1074 are below the smallest double (and e > 149
// below the smallest float): those are 0, the rest strictly increasing.
TEST(AttnProbQuant, LevelsMonotoneWithExactEnds) {
  for (ProbLevels kind : {ProbLevels::kUniform, ProbLevels::kLog2, ProbLevels::kTanq}) {
    for (int b : {2, 3, 4, 6, 8, 12, 16}) {
      const AttnProbQuantSpec s = spec(kind, b);
      const std::vector<double> ref = prob_levels_reference(s);
      ASSERT_EQ(ref.size(), size_t{1} << b);
      EXPECT_EQ(ref.front(), 0.0);
      EXPECT_EQ(ref.back(), 1.0);
      size_t nonzero = 0;
      for (size_t k = 1; k < ref.size(); ++k) {
        if (kind == ProbLevels::kLog2 && ref[k] == 0.0) continue;
        ++nonzero;
        ASSERT_LT(ref[k - 1], ref[k]) << attn_prob_quant_name(s) << " " << k;
      }
      const size_t expect_nonzero = kind == ProbLevels::kLog2 ? std::min<size_t>(ref.size() - 1, 1075) : ref.size() - 1;
      EXPECT_EQ(nonzero, expect_nonzero) << attn_prob_quant_name(s);
      if (kind == ProbLevels::kTanq) {
        const size_t n = ref.size();
        for (size_t k = 0; k < n; ++k) EXPECT_NEAR(ref[k] + ref[n - 1 - k], 1.0, 1e-15);
        const double uniform_step = 1.0 / static_cast<double>(n - 1);
        EXPECT_LT(ref[1], uniform_step);
        EXPECT_GT(ref[n / 2] - ref[n / 2 - 1], uniform_step);
      }
    }
  }
}

// The table returns the reference's level for every float tried: both sides of
// every threshold (where an off-by-one would show) and a million uniform draws.
TEST(AttnProbQuant, TableMatchesTheReference) {
  std::mt19937 rng(19);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  for (ProbLevels kind : {ProbLevels::kUniform, ProbLevels::kLog2, ProbLevels::kTanq}) {
    for (int b : {2, 3, 4, 6, 8}) {
      const AttnProbQuantSpec s = spec(kind, b);
      const AttnProbQuantizer q(s);
      const std::vector<double> ref = prob_levels_reference(s);
      auto check = [&](float x) {
        const float expected = static_cast<float>(ref[prob_level_index_reference(s, x)]);
        ASSERT_EQ(q.quantize(x, 1.0f), expected) << attn_prob_quant_name(s) << " x = " << x;
      };
      std::vector<float> probes;
      for (size_t k = 1; k < ref.size(); ++k) {
        // The reference boundary between levels k-1 and k, found from the table's
        // own neighbours would be circular: probe around the levels' midpoints too.
        const float mid = static_cast<float>(0.5 * (ref[k - 1] + ref[k]));
        probes.push_back(mid);
        probes.push_back(std::nextafter(mid, 0.0f));
        probes.push_back(std::nextafter(mid, 1.0f));
        probes.push_back(static_cast<float>(ref[k]));
      }
      for (int i = 0; i < 1000000 / 15; ++i) probes.push_back(unit(rng));
      for (float x : probes) check(x);
    }
  }
}

// Rounding is to the nearest level in the kind's domain: x for uniform, -log2(x)
// for log2, tan(θ(2x - 1)) for TanQ; checked by brute force over the levels.
TEST(AttnProbQuant, NearestLevelInItsDomain) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> unit(1e-4, 1.0);
  const double t = std::tan(kTanqTheta);
  for (ProbLevels kind : {ProbLevels::kUniform, ProbLevels::kLog2, ProbLevels::kTanq}) {
    const AttnProbQuantSpec s = spec(kind, 4);
    const std::vector<double> ref = prob_levels_reference(s);
    auto domain = [&](double x) {
      if (kind == ProbLevels::kUniform) return x;
      if (kind == ProbLevels::kLog2) return x > 0 ? -std::log2(x) : std::numeric_limits<double>::infinity();
      return std::tan(kTanqTheta * (2 * x - 1)) / t;
    };
    for (int i = 0; i < 20000; ++i) {
      const float x = static_cast<float>(unit(rng));
      const int got = prob_level_index_reference(s, x);
      double best = std::numeric_limits<double>::infinity();
      for (size_t k = 0; k < ref.size(); ++k) {
        if (kind == ProbLevels::kLog2 && k == 0) continue;  // 0 only below the smallest nonzero level's half
        best = std::min(best, std::fabs(domain(x) - domain(ref[k])));
      }
      // log2's 0 takes values whose -log2 is past the last exponent's half step.
      if (kind == ProbLevels::kLog2 && -std::log2(static_cast<double>(x)) > static_cast<double>(ref.size() - 2) + 0.5) {
        EXPECT_EQ(got, 0) << x;
        continue;
      }
      EXPECT_LE(std::fabs(domain(x) - domain(ref[got])), best * (1 + 1e-12) + 1e-12)
          << attn_prob_quant_name(s) << " x = " << x << " got level " << got;
    }
  }
}

TEST(AttnProbQuant, ZeroOneNanInfinity) {
  const float inf = std::numeric_limits<float>::infinity();
  for (ProbLevels kind : {ProbLevels::kUniform, ProbLevels::kLog2, ProbLevels::kTanq}) {
    for (int b : {2, 4, 8, 16}) {
      const AttnProbQuantizer q(spec(kind, b));
      for (float s : {1.0f, 0.375f}) {
        EXPECT_EQ(q.quantize(0.0f, s), 0.0f);
        EXPECT_EQ(q.quantize(-0.0f, s), 0.0f);
        EXPECT_EQ(q.quantize(-1.0f, s), 0.0f);
        EXPECT_EQ(q.quantize(-inf, s), 0.0f);
        EXPECT_EQ(q.quantize(s, s), s);  // the top level is s exactly
        EXPECT_EQ(q.quantize(1.0f, s), s);
        EXPECT_EQ(q.quantize(2.0f, s), s);
        EXPECT_EQ(q.quantize(inf, s), s);
        EXPECT_TRUE(std::isnan(q.quantize(std::numeric_limits<float>::quiet_NaN(), s)));
      }
    }
  }
}

// median/MAD: s = min(max, median + 3·MAD).
TEST(AttnProbQuant, MedianScaleOnKnownSamples) {
  // {0.2, 0.3, 0.4, 0.5, 0.9}: median 0.4; |m - 0.4| = {0.2, 0.1, 0, 0.1, 0.5}, MAD 0.1;
  // 0.4 + 0.3 = 0.7 < 0.9. Float sums: within a few ulps of 1.
  std::vector<float> odd = {0.9f, 0.2f, 0.5f, 0.3f, 0.4f};
  EXPECT_NEAR(median_mad_scale(odd), 0.7f, 4e-7f);
  // {0.1, 0.2, 0.3, 1.0}: median 0.25; deviations {0.15, 0.05, 0.05, 0.75}, MAD 0.1; s = 0.55.
  std::vector<float> even = {1.0f, 0.3f, 0.1f, 0.2f};
  EXPECT_NEAR(median_mad_scale(even), 0.55f, 4e-7f);
  // Tight rows: median + 3 MAD above the maximum, so the maximum.
  std::vector<float> tight = {0.5f, 0.6f, 0.55f};
  EXPECT_EQ(median_mad_scale(tight), 0.6f);
  std::vector<float> one = {0.25f};
  EXPECT_EQ(median_mad_scale(one), 0.25f);
  std::vector<float> none;
  EXPECT_EQ(median_mad_scale(none), 1.0f);
}

// Causal rows of lengths 2, 3, 4 in a stride of 4, maxima {0.9, 0.5, 0.4}: median
// 0.5, MAD 0.1, s = 0.8; uniform:2 levels at s: {0, 0.8/3, 1.6/3, 0.8}.
TEST(AttnProbQuant, CausalRowsUseTheHeadsMedianScale) {
  const float sentinel = -7.0f;
  std::vector<float> p = {0.9f, 0.1f, sentinel, sentinel,  //
                          0.5f, 0.3f, 0.2f,     sentinel,  //
                          0.4f, 0.3f, 0.2f,     0.1f};
  const AttnProbQuantizer q(spec(ProbLevels::kUniform, 2, ProbScale::kMedian));
  q.quantize_causal_rows(p.data(), 3, 4, 2);
  const float s = 0.8f, l1 = s * (1.0f / 3), l2 = s * (2.0f / 3);
  // x/s·3: 0.9 → clipped; 0.1 → 0.375 → 0; 0.5 → 1.875 → 2; 0.3 → 1.125 → 1; 0.2 → 0.75 → 1;
  // 0.4 → 1.5 → 2 (ties up); 0.1 → 0.
  const std::vector<float> expected = {s,  0.0f, sentinel, sentinel, l2, l1, l1, sentinel, l2, l1, l1, 0.0f};
  for (size_t i = 0; i < p.size(); ++i) EXPECT_NEAR(p[i], expected[i], 1e-6f) << i;
  // Scale one leaves the scale at 1: 0.9·3 = 2.7 → 1.
  std::vector<float> r = {0.9f, 0.1f};
  AttnProbQuantizer(spec(ProbLevels::kUniform, 2)).quantize_causal_rows(r.data(), 1, 2, 2);
  EXPECT_EQ(r[0], 1.0f);
  EXPECT_EQ(r[1], 0.0f);
}

TEST(AttnProbQuant, ParsesSpecsAndNamesErrors) {
  auto ok = parse_attn_prob_quant("tanq-median:6");
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(ok->levels, ProbLevels::kTanq);
  EXPECT_EQ(ok->scale, ProbScale::kMedian);
  EXPECT_EQ(ok->bits, 6);
  EXPECT_EQ(attn_prob_quant_name(*ok), "tanq-median:6");
  for (const AttnProbKindInfo& k : attn_prob_kinds()) {
    auto parsed = parse_attn_prob_quant(std::string(k.name) + ":8");
    ASSERT_TRUE(parsed.ok()) << k.name;
    EXPECT_EQ(attn_prob_quant_name(*parsed), std::string(k.name) + ":8");
  }
  const std::pair<const char*, const char*> bad[] = {
      {"tanq", "'tanq': expected KIND:BITS"},
      {"tan:4", "unknown kind 'tan'"},
      {"tanq:1", "bits 1 out of range [2, 16]"},
      {"uniform:17", "bits 17 out of range [2, 16]"},
      {"tanq:4x", "bits '4x' is not an integer"},
      {"tanq:", "bits '' is not an integer"},
  };
  for (const auto& [text, message] : bad) {
    auto r = parse_attn_prob_quant(text);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_NE(r.status().message().find(message), std::string::npos) << r.status().message();
  }
}

// A one-layer block with a zero MLP, so out = x + W_o·attn. With P rounded to
// uniform:16 (|ΔP| ≤ Δ/2, Δ = 1/(2^16 - 1); P ≤ 1 so nothing is clipped), each
// attention output moves by at most (Δ/2)·Σ_p |v_pd|, plus the FP32 rounding of
// both P·V sums, each ≤ γ_n·Σ_p |P_p||v_pd| ≤ γ_n·max_p|v_pd|·(1 + nΔ/2) with
// γ_n = n·ε/(1 - n·ε); then through o_proj (Σ_j |W_o[i,j]|·that, plus its own
// rounding, 2γ_{q_dim}·Σ_j |W_o[i,j]||attn_j|) and the residual add (2ε|out_i|).
// Checked for a 40-token prompt and the decode step after it; TanQ at 2 bits must
// exceed the same bound (the quantization is applied, and the bound is not loose
// enough to hide a coarse grid).
TEST(AttnProbQuant, FineGridBlockWithinRoundingBound) {
  const ModelConfig c = shape_config("dim=64,layers=1,heads=8,kv_heads=4,ffn=172,vocab=512").value();
  std::mt19937 rng(7);
  auto matrix = [&](int64_t rows, int64_t cols, float a) {
    Matrix m;
    m.rows = rows;
    m.cols = cols;
    m.data.resize(static_cast<size_t>(rows * cols));
    std::uniform_real_distribution<float> u(-a, a);
    for (float& v : m.data) v = u(rng);
    return m;
  };
  auto zeros = [](int64_t rows, int64_t cols) {
    Matrix m;
    m.rows = rows;
    m.cols = cols;
    m.data.assign(static_cast<size_t>(rows * cols), 0.0f);
    return m;
  };
  LayerWeights w;
  w.attn_norm.assign(c.dim, 1.0f);
  w.ffn_norm.assign(c.dim, 1.0f);
  w.q_proj = matrix(c.q_dim(), c.dim, 0.4f);  // peaked scores: P spans [~0, ~1]
  w.k_proj = matrix(c.kv_dim(), c.dim, 0.4f);
  w.v_proj = matrix(c.kv_dim(), c.dim, 0.2f);
  w.o_proj = matrix(c.dim, c.q_dim(), 0.2f);
  w.gate_proj = zeros(c.ffn_dim, c.dim);
  w.up_proj = zeros(c.ffn_dim, c.dim);
  w.down_proj = zeros(c.dim, c.ffn_dim);
  const Matrix wo = w.o_proj, wv = w.v_proj;
  auto block = DecoderBlock::create(c, 0, std::move(w), {});
  ASSERT_TRUE(block.ok()) << block.status().message();

  const int n = 40;
  std::vector<float> x0 = testing::gaussian(static_cast<size_t>(n + 1) * c.dim, 3);  // [n + 1, dim]
  ThreadPool pool(2);
  // Outputs [n + 1, dim]: the prompt's n rows, then one decode step.
  auto run = [&](std::shared_ptr<const AttnProbQuantizer> q) {
    block->set_attn_prob_quant(std::move(q));
    Fp32KvCache cache(1, n + 1, c.kv_dim());
    BlockScratch scratch;
    std::vector<float> x = x0;
    EXPECT_TRUE(block->forward(x.data(), n, 0, cache, 0, scratch, pool, nullptr).ok());
    EXPECT_TRUE(block->forward(x.data() + static_cast<size_t>(n) * c.dim, 1, n, cache, 0, scratch, pool, nullptr).ok());
    return x;
  };
  const std::vector<float> exact = run(nullptr);
  const std::vector<float> fine = run(std::make_shared<AttnProbQuantizer>(spec(ProbLevels::kUniform, 16)));
  const std::vector<float> coarse = run(std::make_shared<AttnProbQuantizer>(spec(ProbLevels::kTanq, 2)));

  // v = W_v·rms_norm(x) for every position: [n + 1, kv_dim].
  std::vector<float> v(static_cast<size_t>(n + 1) * c.kv_dim());
  std::vector<float> xn(c.dim), ones(c.dim, 1.0f);
  for (int p = 0; p <= n; ++p) {
    rms_norm(x0.data() + static_cast<size_t>(p) * c.dim, ones.data(), c.dim, c.norm_eps, xn.data());
    for (int r = 0; r < c.kv_dim(); ++r) {
      double acc = 0.0;
      for (int j = 0; j < c.dim; ++j) acc += static_cast<double>(wv.data[static_cast<size_t>(r) * c.dim + j]) * xn[j];
      v[static_cast<size_t>(p) * c.kv_dim() + r] = static_cast<float>(acc);
    }
  }
  const double eps = std::numeric_limits<float>::epsilon() / 2;  // unit roundoff
  const double delta = 1.0 / 65535.0;
  auto gamma = [&](int k) { return k * eps / (1 - k * eps); };
  double worst_ratio_fine = 0.0, worst_ratio_coarse = 0.0;
  for (int t = 0; t <= n; ++t) {
    const int seen = t + 1;  // positions [0, t]
    std::vector<double> d_attn(c.q_dim()), a_attn(c.q_dim());  // bound on |Δattn_j|, on |attn_j|
    for (int h = 0; h < c.n_heads; ++h) {
      const int kvh = h / (c.n_heads / c.n_kv_heads);
      for (int d = 0; d < c.head_dim; ++d) {
        double sum_abs = 0.0, max_abs = 0.0;
        for (int p = 0; p < seen; ++p) {
          const double a = std::fabs(v[static_cast<size_t>(p) * c.kv_dim() + kvh * c.head_dim + d]);
          sum_abs += a;
          max_abs = std::max(max_abs, a);
        }
        const double grow = 1 + seen * delta / 2;  // Σ P̃ ≤ 1 + nΔ/2
        d_attn[h * c.head_dim + d] = delta / 2 * sum_abs + 2 * gamma(seen) * max_abs * grow;
        a_attn[h * c.head_dim + d] = max_abs * grow;
      }
    }
    for (int i = 0; i < c.dim; ++i) {
      double bound = 0.0, o_abs = 0.0;
      for (int j = 0; j < c.q_dim(); ++j) {
        const double wij = std::fabs(wo.data[static_cast<size_t>(i) * c.q_dim() + j]);
        bound += wij * d_attn[j];
        o_abs += wij * a_attn[j];
      }
      const size_t at = static_cast<size_t>(t) * c.dim + i;
      bound += 2 * gamma(c.q_dim()) * o_abs + 2 * eps * (std::fabs(x0[at]) + o_abs);
      const double diff = std::fabs(static_cast<double>(fine[at]) - exact[at]);
      ASSERT_LE(diff, bound) << "token " << t << " channel " << i;
      worst_ratio_fine = std::max(worst_ratio_fine, diff / bound);
      worst_ratio_coarse = std::max(worst_ratio_coarse, std::fabs(static_cast<double>(coarse[at]) - exact[at]) / bound);
    }
  }
  EXPECT_GT(worst_ratio_fine, 0.0);  // P was rounded
  EXPECT_GT(worst_ratio_coarse, 1.0) << "tanq:2 stayed within the 16-bit bound";
}

// The CLI: bad specs are one-line errors naming the flag (exit 1); a run reports the quantizer.
TEST(AttnProbQuant, CliFlag) {
  LB_REQUIRE_SHARED(model, "models/stories260K/stories260K.gguf");
  LB_REQUIRE_SHARED(text, "data/tinystories/tinystories_validation_head.txt");
  const std::string ppl = "ppl " + model + " --text " + text + " --ctx 64 --chunks 2 --no-progress";
  const std::pair<std::string, std::string> bad[] = {
      {" --attn-prob-quant tanq:1", "--attn-prob-quant: attention probability quantizer 'tanq:1': bits 1 out of range"},
      {" --attn-prob-quant median:4", "--attn-prob-quant: attention probability quantizer 'median:4': unknown kind"},
      {" --attn-prob-quant tanq", "expected KIND:BITS"},
      {" --arith fp8 --attn-prob-quant tanq:4", "--attn-prob-quant tanq:4: goes with the FP32 attention, not --arith fp8"},
  };
  for (const auto& [args, key] : bad) {
    const testing::CommandResult r = testing::run_lowbit(ppl + args);
    EXPECT_EQ(r.exit_code, 1) << args << "\n" << r.output;
    EXPECT_EQ(testing::count_lines(r.output), 1u) << r.output;
    EXPECT_EQ(r.output.rfind("lowbit: error: ", 0), 0u) << r.output;
    EXPECT_NE(r.output.find(key), std::string::npos) << r.output;
  }
  testing::ScopedTempDir dir("attn_prob_quant_cli");
  const testing::CommandResult base = testing::run_lowbit(ppl + " --json " + dir.file("base.json"));
  const testing::CommandResult q =
      testing::run_lowbit(ppl + " --attn-prob-quant tanq:3 --base " + model + " --json " + dir.file("q.json"));
  ASSERT_EQ(base.exit_code, 0) << base.output;
  ASSERT_EQ(q.exit_code, 0) << q.output;
  std::ifstream in(dir.file("q.json"));
  const std::string json((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(json.find("\"attn_prob_quant\": \"tanq:3\""), std::string::npos) << json;
  // 3-bit probabilities move the model: a KL divergence above zero.
  EXPECT_EQ(q.output.find("KLD: mean 0.000000 "), std::string::npos) << q.output;
}

}  // namespace
}  // namespace lowbit
