// AWQ scale search (Lin et al. 2023, "AWQ: Activation-aware Weight
// Quantization"), as the reference auto_scale.py does it for one group of
// linears reading the same input X [n, in]:
//
//   for α in {0, 1/grid, ..., (grid − 1)/grid}:
//     s_j = max(mean|x_j|^α, 1e-4),  s ← s / sqrt(max(s) · min(s))
//     err(α) = Σ_linears ‖X Wᵀ − X (Q(W diag(s)) diag(s)⁻¹)ᵀ‖²
//
// with Q the format's round-to-nearest (min-max scales; a GGUF type's own
// search without importance), and keeps the α of
// least error (the first on ties). Protecting the salient input channels (large
// mean|x|) by scaling their weights up before rounding lowers their relative
// rounding error; 1/s is folded into the operation producing X. At α = 0 every
// s_j is exactly 1, so W diag(s) = W bit for bit and the candidate is plain RTN.
// Outputs are computed in float with sgemm; errors are summed in double.
#include <algorithm>
#include <cmath>

#include <cblas.h>

#include "quant/quantizers.h"

namespace lowbit {
namespace {

// s_j = max(m_j^α, 1e-4) normalised by sqrt(max · min).
std::vector<float> awq_scales(const std::vector<float>& mean_abs_x, float alpha) {
  std::vector<float> s(mean_abs_x.size());
  for (size_t j = 0; j < s.size(); ++j) s[j] = std::max(std::pow(mean_abs_x[j], alpha), 1e-4f);
  const auto [lo, hi] = std::minmax_element(s.begin(), s.end());
  const float norm = std::sqrt(*hi * *lo);
  for (float& v : s) v /= norm;
  return s;
}

// y [n, rows] = x [n, cols] · w [rows, cols]ᵀ
void matmul_t(const float* x, int64_t n, int64_t cols, const float* w, int64_t rows, float* y) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n), static_cast<int>(rows),
              static_cast<int>(cols), 1.0f, x, static_cast<int>(cols), w, static_cast<int>(cols), 0.0f, y,
              static_cast<int>(rows));
}

}  // namespace

Expected<AwqResult> search_awq_scales(const WeightFormat& format, const std::vector<const float*>& weights,
                                      const std::vector<int64_t>& rows, int64_t cols, const float* x, int64_t n,
                                      const std::vector<float>& mean_abs_x, const AwqSearch& options) {
  const std::string name = format.name();
  if (weights.empty() || weights.size() != rows.size()) {
    return make_error("awq {}: {} weights with {} row counts", name, weights.size(), rows.size());
  }
  if (cols < 1 || n < 1 || x == nullptr) return make_error("awq {}: empty calibration input [{}, {}]", name, n, cols);
  if (static_cast<int64_t>(mean_abs_x.size()) != cols) {
    return make_error("awq {}: mean|x| has {} values, the input {} channels", name, mean_abs_x.size(), cols);
  }
  for (size_t j = 0; j < mean_abs_x.size(); ++j) {
    if (!(mean_abs_x[j] >= 0.0f) || !std::isfinite(mean_abs_x[j])) {
      return make_error("awq {}: mean|x|[{}] = {} must be finite and >= 0", name, j, mean_abs_x[j]);
    }
  }
  if (options.grid < 1) return make_error("awq {}: grid {} must be >= 1", name, options.grid);
  for (size_t k = 0; k < weights.size(); ++k) {
    if (weights[k] == nullptr || rows[k] < 1) return make_error("awq {}: linear {} is empty", name, k);
  }
  for (size_t k = 0; k < weights.size(); ++k) LB_RETURN_IF_ERROR(format.check_shape(rows[k], cols).with_context("awq"));

  std::vector<std::vector<float>> reference(weights.size());  // [n, rows_k] each: X Wᵀ
  int64_t max_rows = 0;
  for (size_t k = 0; k < weights.size(); ++k) {
    reference[k].resize(static_cast<size_t>(n * rows[k]));
    matmul_t(x, n, cols, weights[k], rows[k], reference[k].data());
    max_rows = std::max(max_rows, rows[k]);
  }
  std::vector<float> ws(static_cast<size_t>(max_rows * cols)), y(static_cast<size_t>(n * max_rows));

  AwqResult best;
  for (int a = 0; a < options.grid; ++a) {
    const float alpha = static_cast<float>(a) / static_cast<float>(options.grid);
    std::vector<float> s = awq_scales(mean_abs_x, alpha);
    double error = 0.0;
    for (size_t k = 0; k < weights.size(); ++k) {
      const int64_t m = rows[k];
      for (int64_t r = 0; r < m; ++r) {
        for (int64_t j = 0; j < cols; ++j) ws[r * cols + j] = weights[k][r * cols + j] * s[j];
      }
      LB_ASSIGN_OR_RETURN(QuantizedTensor qt, format.quantize(ws.data(), m, cols));
      LB_RETURN_IF_ERROR(format.dequantize(qt, ws.data()));
      for (int64_t r = 0; r < m; ++r) {
        for (int64_t j = 0; j < cols; ++j) ws[r * cols + j] /= s[j];
      }
      matmul_t(x, n, cols, ws.data(), m, y.data());
      for (int64_t i = 0; i < n * m; ++i) {
        const double d = static_cast<double>(y[i]) - static_cast<double>(reference[k][i]);
        error += d * d;
      }
    }
    if (a == 0 || error < best.error) {
      best.alpha = alpha;
      best.scales = std::move(s);
      best.error = error;
    }
  }
  return best;
}

}  // namespace lowbit
