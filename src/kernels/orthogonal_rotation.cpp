#include "kernels/orthogonal_rotation.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "core/splitmix64.h"
#include "kernels/hadamard.h"

namespace lowbit {
namespace {

// Different purposes of one seed draw from different streams.
constexpr uint64_t kSignStream = 0x5349474E53ull;      // "SIGNS"
constexpr uint64_t kGaussianStream = 0x4741555353ull;  // "GAUSS"

}  // namespace

std::vector<float> random_signs(int64_t n, uint64_t seed) {
  SplitMix64 rng{seed ^ kSignStream};
  std::vector<float> s(static_cast<size_t>(n));
  for (float& v : s) v = (rng.next() >> 63) ? -1.0f : 1.0f;
  return s;
}

std::vector<double> random_orthogonal_matrix(int64_t n, uint64_t seed) {
  // A: [n, n] standard Gaussian (Box-Muller, both outputs used), stored column-major
  // so a column is contiguous for the Householder steps.
  SplitMix64 rng{seed ^ kGaussianStream};
  const auto nn = static_cast<size_t>(n * n);
  std::vector<double> a(nn);
  for (size_t i = 0; i < nn; i += 2) {
    const double r = std::sqrt(-2.0 * std::log(rng.uniform_positive()));
    const double t = 2.0 * M_PI * rng.uniform_positive();
    a[i] = r * std::cos(t);
    if (i + 1 < nn) a[i + 1] = r * std::sin(t);
  }
  auto at = [&](int64_t row, int64_t col) -> double& { return a[static_cast<size_t>(col * n + row)]; };
  // Householder QR: column k's reflector v_k (stored below the diagonal of a
  // separate array) zeroes A[k+1:, k]; R's diagonal is kept for the sign fix.
  std::vector<double> v(nn, 0.0);     // column-major, v_k in column k, rows k..n-1
  std::vector<double> r_diag(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) {
    double norm2 = 0.0;
    for (int64_t i = k; i < n; ++i) norm2 += at(i, k) * at(i, k);
    const double norm = std::sqrt(norm2);
    const double alpha = at(k, k) >= 0.0 ? -norm : norm;  // R_kk, sign chosen to avoid cancellation
    r_diag[static_cast<size_t>(k)] = alpha;
    double* vk = v.data() + k * n;
    for (int64_t i = k; i < n; ++i) vk[i] = at(i, k);
    vk[k] -= alpha;
    double vnorm2 = 0.0;
    for (int64_t i = k; i < n; ++i) vnorm2 += vk[i] * vk[i];
    if (vnorm2 == 0.0) continue;  // column already reduced (probability zero)
    const double inv = 1.0 / std::sqrt(vnorm2);
    for (int64_t i = k; i < n; ++i) vk[i] *= inv;
    // A[k:, k+1:] ← (I − 2 v vᵀ) A[k:, k+1:]
    for (int64_t j = k + 1; j < n; ++j) {
      double dot = 0.0;
      for (int64_t i = k; i < n; ++i) dot += vk[i] * at(i, j);
      for (int64_t i = k; i < n; ++i) at(i, j) -= 2.0 * dot * vk[i];
    }
  }
  // Q = H_0 H_1 … H_{n-1} · diag(sign R_kk): apply the reflectors to the identity
  // in reverse order. q: [n, n] column-major during the build.
  std::vector<double> q(nn, 0.0);
  for (int64_t i = 0; i < n; ++i) q[static_cast<size_t>(i * n + i)] = 1.0;
  for (int64_t k = n - 1; k >= 0; --k) {
    const double* vk = v.data() + k * n;
    for (int64_t j = 0; j < n; ++j) {
      double* qj = q.data() + j * n;
      double dot = 0.0;
      for (int64_t i = k; i < n; ++i) dot += vk[i] * qj[i];
      for (int64_t i = k; i < n; ++i) qj[i] -= 2.0 * dot * vk[i];
    }
  }
  std::vector<double> out(nn);  // row-major
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      const double sign = r_diag[static_cast<size_t>(j)] < 0.0 ? -1.0 : 1.0;
      out[static_cast<size_t>(i * n + j)] = q[static_cast<size_t>(j * n + i)] * sign;
    }
  }
  return out;
}

Rotation Rotation::create(int64_t n, uint64_t seed, bool with_signs) {
  Rotation r;
  r.n_ = n;
  if (hadamard_supported(n)) {
    r.kind_ = Kind::kHadamard;
    if (with_signs) r.signs_ = random_signs(n, seed);
    return r;
  }
  r.kind_ = Kind::kRandomOrthogonal;
  const std::vector<double> q = random_orthogonal_matrix(n, seed);
  r.dense_.assign(q.begin(), q.end());
  r.note_ = fmt::format("no Hadamard matrix of order {} is known (need 2^k·m, m in 1, 12, 20, 28, 36, 44, 52, 60): "
                        "using a seeded random orthogonal matrix, applied densely (O(n²) per row)",
                        n);
  return r;
}

std::string Rotation::describe() const {
  if (kind_ == Kind::kRandomOrthogonal) return fmt::format("random orthogonal {} (no known Hadamard matrix)", n_);
  return fmt::format("hadamard {}{}", describe_hadamard_order(n_), signs_.empty() ? "" : ", random signs");
}

void Rotation::apply(float* x, int64_t rows) const {
  if (kind_ == Kind::kHadamard) {
    hadamard_rows(x, rows, n_);  // x·H
    if (!signs_.empty()) {       // (x·H)·diag(s)
      for (int64_t r = 0; r < rows; ++r) {
        float* row = x + r * n_;
        for (int64_t j = 0; j < n_; ++j) row[j] *= signs_[static_cast<size_t>(j)];
      }
    }
    return;
  }
  std::vector<double> y(static_cast<size_t>(n_));  // [n] one row of x·Q: y_j = Σ_i x_i Q_ij
  for (int64_t r = 0; r < rows; ++r) {
    float* row = x + r * n_;
    std::fill(y.begin(), y.end(), 0.0);
    for (int64_t i = 0; i < n_; ++i) {
      const double xi = row[i];
      const float* qi = dense_.data() + i * n_;
      for (int64_t j = 0; j < n_; ++j) y[static_cast<size_t>(j)] += xi * qi[j];
    }
    for (int64_t j = 0; j < n_; ++j) row[j] = static_cast<float>(y[static_cast<size_t>(j)]);
  }
}

void Rotation::apply_transpose(float* x, int64_t rows) const {
  if (kind_ == Kind::kHadamard) {
    if (!signs_.empty()) {  // x·(H·D)ᵀ = (x·D)·Hᵀ
      for (int64_t r = 0; r < rows; ++r) {
        float* row = x + r * n_;
        for (int64_t j = 0; j < n_; ++j) row[j] *= signs_[static_cast<size_t>(j)];
      }
    }
    hadamard_rows_transpose(x, rows, n_);
    return;
  }
  std::vector<float> y(static_cast<size_t>(n_));  // [n] one row of x·Qᵀ: y_i = Σ_j x_j Q_ij
  for (int64_t r = 0; r < rows; ++r) {
    float* row = x + r * n_;
    for (int64_t i = 0; i < n_; ++i) {
      const float* qi = dense_.data() + i * n_;
      double acc = 0.0;
      for (int64_t j = 0; j < n_; ++j) acc += static_cast<double>(row[j]) * qi[j];
      y[static_cast<size_t>(i)] = static_cast<float>(acc);
    }
    std::copy(y.begin(), y.end(), row);
  }
}

std::vector<double> Rotation::matrix() const {
  if (kind_ == Kind::kRandomOrthogonal) return {dense_.begin(), dense_.end()};
  std::vector<double> h = hadamard_matrix(n_);
  if (!signs_.empty()) {
    for (int64_t i = 0; i < n_; ++i) {
      for (int64_t j = 0; j < n_; ++j) h[static_cast<size_t>(i * n_ + j)] *= signs_[static_cast<size_t>(j)];
    }
  }
  return h;
}

}  // namespace lowbit
