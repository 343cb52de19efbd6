#include "pipeline/activation_stats.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>

namespace lowbit {
namespace {

// Tokens converted to double per dsyrk call: [256, in] doubles of buffer.
constexpr int64_t kDoubleChunk = 256;

}  // namespace

std::vector<double> InputStats::mean_abs() const {
  std::vector<double> mean(abs_sum.size(), 0.0);
  if (n_tokens == 0) return mean;
  for (size_t j = 0; j < abs_sum.size(); ++j) mean[j] = abs_sum[j] / static_cast<double>(n_tokens);
  return mean;
}

std::vector<double> InputStats::hessian() const {
  if (precision == HessianPrecision::kNone) return {};
  const int64_t in = in_features;
  std::vector<double> h(static_cast<size_t>(in * in));
  for (int64_t j = 0; j < in; ++j) {
    for (int64_t k = j; k < in; ++k) {
      const double v = precision == HessianPrecision::kFp32 ? h_f32[j * in + k] : h_f64[j * in + k];
      h[j * in + k] = v;
      h[k * in + j] = v;
    }
  }
  return h;
}

std::vector<double> InputStats::take_hessian() {
  const int64_t in = in_features;
  if (precision == HessianPrecision::kFp32) {
    std::vector<double> h = hessian();
    h_f32 = std::vector<float>();
    return h;
  }
  if (precision != HessianPrecision::kFp64) return {};
  for (int64_t j = 0; j < in; ++j) {
    for (int64_t k = j + 1; k < in; ++k) h_f64[k * in + j] = h_f64[j * in + k];
  }
  return std::move(h_f64);
}

std::string shared_input_key(const std::string& linear_name) {
  const size_t dot = linear_name.rfind('.');
  if (dot == std::string::npos) return linear_name;
  const std::string prefix = linear_name.substr(0, dot + 1);
  const std::string suffix = linear_name.substr(dot + 1);
  if (suffix == "k_proj" || suffix == "v_proj") return prefix + "q_proj";
  if (suffix == "up_proj") return prefix + "gate_proj";
  return linear_name;
}

ActivationStats::ActivationStats(ActivationStatsOptions options) : options_(std::move(options)) {
  for (const std::string& name : options_.names) selected_keys_.insert(shared_input_key(name));
}

bool ActivationStats::selected(const std::string& key) const {
  return options_.names.empty() || selected_keys_.count(key) != 0;
}

void ActivationStats::observe(const std::string& linear_name, const float* x, int64_t n_tokens, int64_t in_features) {
  if (!status_.ok() || n_tokens <= 0) return;
  Seen& seen = seen_[linear_name];
  if (seen.n_tokens > 0 && seen.in_features != in_features) {
    status_ = make_error("activation statistics: linear '{}' observed with {} input features, earlier {}", linear_name,
                         in_features, seen.in_features);
    return;
  }
  seen.in_features = in_features;
  seen.n_tokens += n_tokens;

  const std::string key = shared_input_key(linear_name);
  if (key != linear_name || !selected(key)) return;  // siblings share the leader's statistics
  InputStats& s = inputs_[key];
  if (s.n_tokens == 0) {
    s.key = key;
    s.in_features = in_features;
    s.precision = options_.hessian;
    s.abs_sum.assign(static_cast<size_t>(in_features), 0.0);
    s.abs_max.assign(static_cast<size_t>(in_features), 0.0f);
    const size_t h_size = static_cast<size_t>(in_features * in_features);
    if (s.precision == HessianPrecision::kFp32) s.h_f32.assign(h_size, 0.0f);
    if (s.precision == HessianPrecision::kFp64) s.h_f64.assign(h_size, 0.0);
  }
  accumulate(s, x, n_tokens);
}

// x: [n_tokens, in]. Channel sums run token by token in order, so they equal a
// plain double loop over all tokens bit for bit.
void ActivationStats::accumulate(InputStats& s, const float* x, int64_t n_tokens) {
  const int64_t in = s.in_features;
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* row = x + t * in;
    for (int64_t j = 0; j < in; ++j) {
      const float a = std::fabs(row[j]);
      s.abs_sum[j] += a;
      s.abs_max[j] = std::max(s.abs_max[j], a);
    }
  }
  s.n_tokens += n_tokens;
  // Upper triangle of H[in, in] += Xᵀ X, X = x as [n_tokens, in] row-major.
  const int n = static_cast<int>(in);
  if (s.precision == HessianPrecision::kFp32) {
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, n, static_cast<int>(n_tokens), 1.0f, x, n, 1.0f, s.h_f32.data(),
                n);
  } else if (s.precision == HessianPrecision::kFp64) {
    // Converted to double kDoubleChunk tokens at a time, to bound the buffer.
    for (int64_t t0 = 0; t0 < n_tokens; t0 += kDoubleChunk) {
      const int64_t rows = std::min(kDoubleChunk, n_tokens - t0);
      x_f64_.assign(x + t0 * in, x + (t0 + rows) * in);
      cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, n, static_cast<int>(rows), 1.0, x_f64_.data(), n, 1.0,
                  s.h_f64.data(), n);
    }
  }
}

const InputStats* ActivationStats::find(const std::string& linear_name) const {
  auto it = inputs_.find(shared_input_key(linear_name));
  return it == inputs_.end() ? nullptr : &it->second;
}

std::vector<double> ActivationStats::take_hessian(const std::string& linear_name) {
  auto it = inputs_.find(shared_input_key(linear_name));
  if (it == inputs_.end()) return {};
  std::vector<double> h = it->second.take_hessian();
  inputs_.erase(it);
  return h;
}

void ActivationStats::erase(const std::string& linear_name) { inputs_.erase(shared_input_key(linear_name)); }

void ActivationStats::clear() {
  inputs_.clear();
  seen_.clear();
  x_f64_ = std::vector<double>();
  status_ = Status::ok_status();
}

}  // namespace lowbit
