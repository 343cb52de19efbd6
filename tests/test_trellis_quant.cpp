// The trellis-coded quantizer (quant/trellis_viterbi.h, quant/trellis_quantize.h,
// GPTQ's BlockLDLQ in quant/gptq.cpp): Viterbi against brute force over every
// bit string of small tail-biting trellises, exact recovery of trellis paths,
// zero and constant groups, identical codes at every ISA build and thread count,
// BlockLDLQ with known answers, names refused with one-line errors.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <vector>

#include "core/half.h"
#include "core/thread_pool.h"
#include "model/lowbit_file.h"
#include "model_writers.h"
#include "pipeline/recipe.h"
#include "test_quantize_util.h"
#include "formats/trellis_code.h"
#include "quant/quantizers.h"
#include "quant/trellis_quantize.h"
#include "quant/trellis_viterbi.h"
#include "quant/weight_format.h"

namespace lowbit {
namespace {

// An independent decoder for any (L, k, V, steps): state t = bits [t k, t k + L) of
// the circular string of n = steps k bits.
std::vector<int> decode_string(const TrellisParams& p, int steps, uint64_t string) {
  const int n = steps * p.step_bits;
  std::vector<int> v;
  for (int t = 0; t < steps; ++t) {
    uint32_t s = 0;
    for (int j = 0; j < p.state_bits; ++j) s |= static_cast<uint32_t>((string >> ((t * p.step_bits + j) % n)) & 1u) << j;
    for (int j = 0; j < p.values_per_step; ++j) v.push_back(trellis_state_value(s, j));
  }
  return v;
}

std::string read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_file_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

uint64_t bytes_to_string(const std::vector<uint8_t>& bits) {
  uint64_t s = 0;
  for (size_t i = 0; i < bits.size(); ++i) s |= static_cast<uint64_t>(bits[i]) << (8 * i);
  return s;
}

double path_cost(const std::vector<int>& v, const std::vector<float>& x, const std::vector<float>& w) {
  double c = 0.0;
  for (size_t i = 0; i < v.size(); ++i) c += static_cast<double>(w[i]) * (x[i] - v[i]) * (x[i] - v[i]);
  return c;
}

TrellisParams small_params(int l, int k, int v) {
  TrellisParams p;
  p.state_bits = l;
  p.step_bits = k;
  p.values_per_step = v;
  return p;
}

TEST(TrellisViterbi, ExactTailBitingMatchesBruteForceOverEveryString) {
  struct Case {
    int l, k, v, steps;
  };
  // n = steps k bits, 2^n strings each; L <= n.
  const Case cases[] = {{4, 1, 1, 6}, {4, 2, 1, 4}, {5, 2, 2, 4}, {6, 3, 1, 4}, {6, 2, 1, 6}, {8, 2, 1, 8},
                        {8, 4, 2, 4}, {6, 1, 1, 12}};
  std::mt19937 rng(7);
  std::normal_distribution<float> gauss(0.0f, 40.0f);
  std::uniform_real_distribution<float> uniform(0.0f, 2.0f);
  for (const Case& c : cases) {
    const TrellisParams p = small_params(c.l, c.k, c.v);
    auto exact = TrellisEncoder::create(p, c.steps);
    auto two_pass = TrellisEncoder::create(p, c.steps);
    ASSERT_TRUE(exact.ok()) << exact.status().message();
    const int len = exact->length(), n_bits = c.steps * c.k;
    for (int trial = 0; trial < 6; ++trial) {
      std::vector<float> x(static_cast<size_t>(len)), w(x.size(), 1.0f);
      for (float& e : x) e = gauss(rng);
      if (trial % 2 == 1) {
        for (float& e : w) e = uniform(rng);
      }
      double best = std::numeric_limits<double>::infinity();
      for (uint64_t s = 0; s < (uint64_t{1} << n_bits); ++s) best = std::min(best, path_cost(decode_string(p, c.steps, s), x, w));
      std::vector<uint8_t> bits(static_cast<size_t>(exact->bytes()));
      const float cost = exact->encode(x.data(), w.data(), TailBiting::kExact, bits.data());
      const double got = path_cost(decode_string(p, c.steps, bytes_to_string(bits)), x, w);
      // The Viterbi sums len terms in float, each of 3 roundings: |error| <= (len + 3) 2^-24 cost.
      const double tol = (len + 3) * std::ldexp(1.0, -24) * best + 1e-9;
      EXPECT_NEAR(got, best, tol) << "L " << c.l << " k " << c.k << " V " << c.v << " trial " << trial;
      EXPECT_NEAR(cost, got, tol);
      // Two passes: a valid tail-biting string, never better than the optimum, whose
      // reported cost is its own.
      const float cost2 = two_pass->encode(x.data(), w.data(), TailBiting::kTwoPass, bits.data());
      const double got2 = path_cost(decode_string(p, c.steps, bytes_to_string(bits)), x, w);
      EXPECT_GE(got2, best - tol);
      EXPECT_NEAR(cost2, got2, (len + 3) * std::ldexp(1.0, -24) * got2 + 1e-9);
    }
  }
}

TEST(TrellisViterbi, RefusesTrellisesItCannotEncode) {
  EXPECT_FALSE(TrellisEncoder::create(small_params(12, 2, 1), 5).ok());  // 10 bits < L
  EXPECT_FALSE(TrellisEncoder::create(small_params(12, 12, 1), 8).ok());  // k = L
  EXPECT_FALSE(TrellisEncoder::create(small_params(20, 2, 1), 64).ok());  // L > 16
  EXPECT_FALSE(TrellisEncoder::create(small_params(12, 2, 3), 64).ok());  // V > 2: no third value
}

const char* const kFormats[] = {"tcq2_g64", "tcq2p5_g64", "tcq3_g128", "tcq4_g64"};

TEST(TrellisViterbi, RecoversEveryTrellisPathExactly) {
  std::mt19937 rng(11);
  for (const char* name : kFormats) {
    const TrellisParams p = parse_trellis_format(name).value();
    auto enc = TrellisEncoder::create(p);
    ASSERT_TRUE(enc.ok());
    for (int trial = 0; trial < 8; ++trial) {
      std::vector<uint8_t> seq(static_cast<size_t>(p.seq_bytes())), got(seq.size());
      for (uint8_t& b : seq) b = static_cast<uint8_t>(rng());
      std::vector<float> x(kTrellisSeqLen);
      for (int t = 0; t < p.steps(); ++t) {
        for (int j = 0; j < p.values_per_step; ++j) {
          x[t * p.values_per_step + j] = static_cast<float>(trellis_state_value(trellis_state(p, seq.data(), t), j));
        }
      }
      EXPECT_EQ(enc->encode(x.data(), nullptr, TailBiting::kTwoPass, got.data()), 0.0f) << name;
      for (int t = 0; t < p.steps(); ++t) {  // same values (a string of equal values may differ in bits)
        for (int j = 0; j < p.values_per_step; ++j) {
          ASSERT_EQ(trellis_state_value(trellis_state(p, got.data(), t), j), x[t * p.values_per_step + j]) << name;
        }
      }
      // Scaled by an FP16 scale, the group encoder with that scale is exact too.
      const uint16_t scale = float_to_fp16(0.01171875f);
      std::vector<float> xs(x.size());
      for (size_t i = 0; i < x.size(); ++i) xs[i] = fp16_to_float(scale) * x[i];
      auto code = trellis_encode_group(*enc, xs.data(), nullptr, kTrellisSeqLen, 0, got.data(), &scale);
      ASSERT_TRUE(code.ok());
      EXPECT_EQ(code->error, 0.0) << name;
    }
  }
}

TEST(TrellisQuant, ZeroAndConstantGroupsAreSafe) {
  const TrellisParams p = parse_trellis_format("tcq2_g64").value();
  auto enc = TrellisEncoder::create(p);
  ASSERT_TRUE(enc.ok());
  // Row: one zero group, one constant group, one tiny group (scale underflows FP16).
  const int64_t cols = 192;
  std::vector<float> x(cols, 0.0f);
  for (int64_t c = 64; c < 128; ++c) x[c] = 0.5f;
  for (int64_t c = 128; c < 192; ++c) x[c] = 1e-12f;
  const QuantizedTensor t = trellis_quantize(p, x.data(), 1, cols, {}, nullptr).value();
  std::vector<float> out(cols);
  ASSERT_TRUE(trellis_dequantize(p, t, out.data()).ok());
  EXPECT_EQ(t.scales[0] | (t.scales[1] << 8), 0);
  for (int64_t c = 0; c < 64; ++c) EXPECT_EQ(out[c], 0.0f);
  for (int64_t c = 128; c < 192; ++c) EXPECT_EQ(out[c], 0.0f);
  // Constant: the least-squares scale of codes correlated with x leaves less than Σ x².
  double err = 0.0;
  for (int64_t c = 64; c < 128; ++c) {
    ASSERT_TRUE(std::isfinite(out[c]));
    err += (out[c] - 0.5) * (out[c] - 0.5);
  }
  EXPECT_LT(err, 64 * 0.25);
  // A weight past FP16 scales is an error naming the format.
  x[70] = 1e9f;
  auto big = trellis_quantize(p, x.data(), 1, cols, {}, nullptr);
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.status().message().find("tcq2_g64"), std::string::npos) << big.status().message();
  x[70] = std::nanf("");
  EXPECT_FALSE(trellis_quantize(p, x.data(), 1, cols, {}, nullptr).ok());
}

std::vector<float> gaussian_matrix(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, 0.02f);
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (float& e : w) e = g(rng);
  return w;
}

TEST(TrellisQuant, SameCodesAtEveryIsaBuildAndThreadCount) {
  const int64_t rows = 9, cols = 256;
  const std::vector<float> w = gaussian_matrix(rows, cols, 5);
  std::vector<float> importance(cols);
  for (int64_t c = 0; c < cols; ++c) importance[c] = 0.5f + static_cast<float>(c % 7);
  for (const char* name : kFormats) {
    const TrellisParams p = parse_trellis_format(name).value();
    const QuantizedTensor one = trellis_quantize(p, w.data(), rows, cols, importance, nullptr).value();
    for (int threads : {2, 3}) {
      ThreadPool pool(threads);
      const QuantizedTensor t = trellis_quantize(p, w.data(), rows, cols, importance, &pool).value();
      EXPECT_EQ(t.codes, one.codes) << name << " threads " << threads;
      EXPECT_EQ(t.scales, one.scales) << name << " threads " << threads;
    }
  }
  // The step loops' builds directly, on sequences of Gaussian targets.
  const CpuFeatures cpu = detect_cpu_features();
  for (const char* name : kFormats) {
    const TrellisParams p = parse_trellis_format(name).value();
    auto generic = TrellisEncoder::create(p, p.steps(), Isa::kGeneric);
    ASSERT_TRUE(generic.ok());
    for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
      if (!isa_supported(isa, cpu)) continue;
      auto other = TrellisEncoder::create(p, p.steps(), isa);
      std::mt19937 rng(3);
      std::normal_distribution<float> g(0.0f, 30.0f);
      for (int trial = 0; trial < 20; ++trial) {
        std::vector<float> x(kTrellisSeqLen), wt(kTrellisSeqLen);
        for (float& e : x) e = g(rng);
        for (float& e : wt) e = std::fabs(g(rng));
        std::vector<uint8_t> a(static_cast<size_t>(p.seq_bytes())), b(a.size());
        const float ca = generic->encode(x.data(), wt.data(), TailBiting::kTwoPass, a.data());
        const float cb = other->encode(x.data(), wt.data(), TailBiting::kTwoPass, b.data());
        EXPECT_EQ(a, b) << name << " " << isa_name(isa);
        EXPECT_EQ(ca, cb) << name << " " << isa_name(isa);
      }
    }
  }
}

TEST(TrellisQuant, ErrorOfGaussianWeightsAgainstTheRateDistortionBound) {
  // Rate-distortion bound for a Gaussian source: D(R) = σ² 2^(-2R), so the relative MSE at
  // R = 2, 2.5, 3, 4 bits (+ 16/512 for the FP16 scales) can be no lower than ~1/16, 1/32, 1/64,
  // 1/256. More bits give less error (tcq2 > tcq2p5 > tcq3 > tcq4: tcq2p5's two values of a
  // state are two independent hashes of it), and tcq2 beats the best scalar 2-bit quantizer
  // (Lloyd-Max, 0.1175).
  const int64_t rows = 16, cols = 512;
  const std::vector<float> w = gaussian_matrix(rows, cols, 9);
  double energy = 0.0;
  for (float e : w) energy += static_cast<double>(e) * e;
  const char* names[] = {"tcq2_g512", "tcq2p5_g512", "tcq3_g512", "tcq4_g512"};
  const double bits[] = {2.0, 2.5, 3.0, 4.0};
  double previous = 0.1175;
  for (int i = 0; i < 4; ++i) {
    const WeightFormat f = WeightFormat::find(names[i]).value();
    const QuantizedTensor t = f.quantize(w.data(), rows, cols).value();
    std::vector<float> out(w.size());
    ASSERT_TRUE(f.dequantize(t, out.data()).ok());
    double err = 0.0;
    for (size_t j = 0; j < w.size(); ++j) err += (w[j] - out[j]) * static_cast<double>(w[j] - out[j]);
    const double rel = err / energy;
    EXPECT_GT(rel, std::pow(2.0, -2.0 * (bits[i] + 16.0 / 512))) << names[i];  // + the scales' bits
    EXPECT_LT(rel, previous) << names[i];
    previous = rel;
  }
}

// H = X^T X of n samples whose columns are correlated: x = z A, A = I + 0.9 (shift by one).
std::vector<double> correlated_hessian(int64_t cols, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> g(0.0, 1.0);
  std::vector<double> x(static_cast<size_t>(n * cols));
  for (int64_t t = 0; t < n; ++t) {
    double prev = g(rng);
    for (int64_t c = 0; c < cols; ++c) {
      const double z = g(rng);
      x[t * cols + c] = z + 0.9 * prev;
      prev = z;
    }
  }
  std::vector<double> h(static_cast<size_t>(cols * cols), 0.0);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t i = 0; i < cols; ++i) {
      for (int64_t j = 0; j < cols; ++j) h[i * cols + j] += x[t * cols + i] * x[t * cols + j];
    }
  }
  return h;
}

TEST(TrellisGptq, IdentityHessianIsPlainTrellisRtn) {
  const int64_t rows = 8, cols = 256;
  const std::vector<float> w = gaussian_matrix(rows, cols, 21);
  std::vector<double> h(static_cast<size_t>(cols * cols), 0.0);
  for (int64_t i = 0; i < cols; ++i) h[i * cols + i] = 1.0;
  for (const char* name : {"tcq2_g64", "tcq3_g128"}) {
    const WeightFormat f = WeightFormat::find(name).value();
    const QuantizedWeight rtn = quantize_rtn(f, w.data(), rows, cols, {}).value();
    const QuantizedWeight gptq = quantize_gptq(f, w.data(), rows, cols, h, {}).value();
    EXPECT_EQ(gptq.tensor.codes, rtn.tensor.codes) << name;
    EXPECT_EQ(gptq.tensor.scales, rtn.tensor.scales) << name;
  }
}

TEST(TrellisGptq, BlockLdlqLowersTheProxyErrorOnCorrelatedInputs) {
  const int64_t rows = 16, cols = 256;
  const std::vector<float> w = gaussian_matrix(rows, cols, 23);
  const std::vector<double> h = correlated_hessian(cols, 1024, 29);
  for (const char* name : {"tcq2_g64", "tcq2p5_g128", "tcq3_g64"}) {
    const WeightFormat f = WeightFormat::find(name).value();
    const QuantizedWeight rtn = quantize_rtn(f, w.data(), rows, cols, {}).value();
    std::vector<float> q(w.size());
    ASSERT_TRUE(dequantize_weight(rtn, q.data()).ok());
    const double rtn_error = hessian_proxy_error(w.data(), q.data(), rows, cols, h);
    GptqStats stats;
    ThreadPool pool(2);
    GptqOptions o;
    o.pool = &pool;
    const QuantizedWeight gptq = quantize_gptq(f, w.data(), rows, cols, h, o, &stats).value();
    std::vector<float> qg(w.size());
    ASSERT_TRUE(dequantize_weight(gptq, qg.data()).ok());
    // The stats are the file's values: the proxy of the dequantized result.
    EXPECT_NEAR(stats.proxy_error, hessian_proxy_error(w.data(), qg.data(), rows, cols, h), 1e-9 * stats.proxy_error);
    EXPECT_LT(stats.proxy_error, rtn_error) << name;
    // And the same codes on one thread.
    const QuantizedWeight serial = quantize_gptq(f, w.data(), rows, cols, h, {}).value();
    EXPECT_EQ(serial.tensor.codes, gptq.tensor.codes) << name;
  }
  GptqOptions act;
  act.act_order = true;
  auto refused = quantize_gptq(WeightFormat::find("tcq2_g64").value(), w.data(), rows, cols, h, act);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("act_order"), std::string::npos) << refused.status().message();
}

TEST(TrellisFormat, NamesAndShapesAreCheckedWithOneLineErrors) {
  for (const char* bad : {"tcq5_g64", "tcq2_g100", "tcq2", "tcq2_gx"}) {
    auto f = WeightFormat::find(bad);
    ASSERT_FALSE(f.ok()) << bad;
    EXPECT_NE(f.status().message().find(bad), std::string::npos) << f.status().message();
    EXPECT_EQ(f.status().message().find('\n'), std::string::npos);
  }
  const WeightFormat f = WeightFormat::find("tcq2_g256").value();
  EXPECT_EQ(f.name(), "tcq2_g256");
  ASSERT_NE(f.trellis_params(), nullptr);
  EXPECT_EQ(f.col_multiple(), 64);
  const Status s = f.check_shape(4, 100);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("100"), std::string::npos) << s.message();
  // 2 bits of codes + 16 bits per 256 columns: 2.0625 bits per weight on [4, 512].
  EXPECT_DOUBLE_EQ(f.bits_per_element(4, 512).value(), 2.0625);
  EXPECT_DOUBLE_EQ(WeightFormat::find("tcq2p5_g64").value().bits_per_element(3, 576).value(), 2.75);
  // Stored sizes are checked on dequantize.
  QuantizedTensor t;
  t.rows = 1;
  t.cols = 64;
  t.codes.resize(3);
  std::vector<float> out(64);
  EXPECT_FALSE(f.dequantize(t, out.data()).ok());
}

class TrellisPipeline : public testing::StoriesPipelineTest {};

TEST_F(TrellisPipeline, W2TcqRoundTripsThroughALowbitFile) {
  // stories260K: dim 64 (q/k/v/o/gate/up inputs: one 64-sequence), ffn 172 (down_proj: no fit).
  testing::ScopedTempDir dir("trellis_pipeline");
  const Recipe recipe = load_recipe("w2-tcq").value();
  PipelineOptions o = pipeline_options(dir.file("t.lbq"));
  o.threads = 2;
  const QuantizeReport tcq = quantize_model(recipe, o).value();
  const LowbitModelFile file = LowbitModelFile::open(dir.file("t.lbq")).value();
  int trellis = 0;
  for (const ModuleReport& m : tcq.modules) {
    if (m.name == "token_embedding" || m.name == "lm_head") continue;
    const bool fits = m.cols % 64 == 0;
    EXPECT_EQ(m.format, fits ? "tcq2_g256" : "int2_g64") << m.name;
    const QuantizedWeight q = file.read(m.name, {m.rows, m.cols}).value();
    EXPECT_EQ(q.format, m.format);
    std::vector<float> out(static_cast<size_t>(m.rows * m.cols));
    ASSERT_TRUE(dequantize_weight(q, out.data()).ok()) << m.name;
    if (fits) {
      ++trellis;
      EXPECT_DOUBLE_EQ(q.bits_per_weight(), 2.25) << m.name;  // 64 columns: one partial group of 256
    }
  }
  EXPECT_EQ(trellis, 5 * 6);
  EXPECT_EQ(tcq.modules.size(), 5u * 7 + 2);  // + token_embedding, lm_head

  // A file whose header lacks lowbit.trellis_codebook (as the first codebook's files
  // do) or names another version is refused on open, in one line naming the file.
  const std::string good = read_file_bytes(dir.file("t.lbq"));
  const std::string key = kTrellisCodebookKey;
  const size_t at = good.find(key);
  ASSERT_NE(at, std::string::npos);
  std::string renamed = good;
  renamed[at + key.size() - 1] = 'X';  // same length: the key is absent, offsets hold
  std::string other = good;
  ASSERT_EQ(other[at + key.size() + 4], '\x02');  // GGUF: key, u32 type, u32 value (little-endian)
  other[at + key.size() + 4] = '\x01';
  for (const std::string& bytes : {renamed, other}) {
    write_file_bytes(dir.file("old.lbq"), bytes);
    auto old = LowbitModelFile::open(dir.file("old.lbq"));
    ASSERT_FALSE(old.ok());
    const std::string m = old.status().message();
    EXPECT_NE(m.find(dir.file("old.lbq")), std::string::npos) << m;
    EXPECT_NE(m.find("re-quantize"), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace lowbit
