// Helpers shared by the quantizer tests (tests/test_quant_*.cpp): seeded
// matrices, named formats, dequantization and error sums.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <cblas.h>

#include "formats/block_format.h"
#include "quant/quantized_weight.h"

namespace lowbit::testing {

inline const BlockFormat& named_format(const std::string& name) {
  auto f = find_block_format(name);
  EXPECT_TRUE(f.ok()) << f.status().message();
  return **f;
}

// [rows, cols] N(0, sigma²), seeded.
inline std::vector<float> gaussian(int64_t rows, int64_t cols, uint64_t seed, float sigma = 1.0f) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> x(static_cast<size_t>(rows * cols));
  for (float& v : x) v = d(gen);
  return x;
}

// Heavy-tailed: Gaussian with every `stride`-th value multiplied by `factor`
// (where clipping the range pays).
inline std::vector<float> heavy_tailed(int64_t rows, int64_t cols, uint64_t seed, int64_t stride, float factor) {
  std::vector<float> w = gaussian(rows, cols, seed);
  for (size_t i = 0; i < w.size(); i += static_cast<size_t>(stride)) w[i] *= factor;
  return w;
}

// H = XᵀX [cols, cols] in double for X [n, cols].
inline std::vector<double> gram(const std::vector<float>& x, int64_t n, int64_t cols) {
  std::vector<double> xd(x.begin(), x.end()), h(static_cast<size_t>(cols * cols));
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<int>(cols), static_cast<int>(cols),
              static_cast<int>(n), 1.0, xd.data(), static_cast<int>(cols), xd.data(), static_cast<int>(cols), 0.0,
              h.data(), static_cast<int>(cols));
  return h;
}

// A least-squares problem for GPTQ: W [rows, cols] Gaussian, inputs X [2·cols, cols]
// with correlated channels (x_j += 0.5 x_{j-1}) and a few loud ones (every 37th
// ×4, so act-order has work to do), H = XᵀX.
struct Problem {
  int64_t rows, cols, samples;
  std::vector<float> w, x;
  std::vector<double> h;
};

inline Problem least_squares(int64_t rows, int64_t cols, uint64_t seed) {
  Problem p{rows, cols, 2 * cols, gaussian(rows, cols, seed), gaussian(2 * cols, cols, seed + 100), {}};
  for (int64_t t = 0; t < p.samples; ++t) {
    float* xt = p.x.data() + t * cols;
    for (int64_t j = 1; j < cols; ++j) xt[j] += 0.5f * xt[j - 1];
    for (int64_t j = 0; j < cols; j += 37) xt[j] *= 4.0f;
  }
  p.h = gram(p.x, p.samples, cols);
  return p;
}

inline std::vector<float> dequantized(const QuantizedWeight& q) {
  std::vector<float> out(static_cast<size_t>(q.rows() * q.cols()));
  Status s = dequantize_weight(q, out.data());
  EXPECT_TRUE(s.ok()) << s.message();
  return out;
}

// Σ (a − b)², in double.
inline double sum_sq_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    s += d * d;
  }
  return s;
}

// Largest |a − b| and where, for failure messages.
struct WorstDiff {
  double diff = 0.0;
  size_t index = 0;
};
inline WorstDiff worst_diff(const std::vector<float>& a, const std::vector<float>& b) {
  WorstDiff w;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs(static_cast<double>(a[i]) - static_cast<double>(b[i]));
    if (d > w.diff) w = {d, i};
  }
  return w;
}

inline float max_abs(const std::vector<float>& x) {
  float m = 0.0f;
  for (float v : x) m = std::max(m, std::fabs(v));
  return m;
}

}  // namespace lowbit::testing
