#include "pipeline/activation_stats.h"

#include "kernels/gemm_bf16.h"

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

std::vector<double> InputStats::mean() const {
  std::vector<double> m(sum.size(), 0.0);
  if (n_tokens == 0) return m;
  for (size_t j = 0; j < sum.size(); ++j) m[j] = sum[j] / static_cast<double>(n_tokens);
  return m;
}

const char* hessian_precision_name(HessianPrecision p) {
  switch (p) {
    case HessianPrecision::kFp32: return "fp32";
    case HessianPrecision::kFp64: return "fp64";
    case HessianPrecision::kBf16: return "bf16";
    default: return "none";
  }
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
  if (!sums_in_double(precision)) return {};
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

ActivationStats::ActivationStats(ActivationStatsOptions options, std::vector<int64_t> shard_starts)
    : options_(std::move(options)), shard_starts_(std::move(shard_starts)) {
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
    s.sum.assign(static_cast<size_t>(in_features), 0.0);
    s.abs_max.assign(static_cast<size_t>(in_features), 0.0f);
    const size_t h_size = static_cast<size_t>(in_features * in_features);
    if (s.precision == HessianPrecision::kFp32) s.h_f32.assign(h_size, 0.0f);
    if (sums_in_double(s.precision)) s.h_f64.assign(h_size, 0.0);
  }
  accumulate(s, x, n_tokens);
}

// fn(j0, j1) over ranges of [0, n) on the options' pool (whole range without one):
// every channel's own loop is unchanged, so the split does not change a bit.
void ActivationStats::for_column_ranges(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (options_.pool == nullptr || options_.pool->size() <= 1) {
    fn(0, n);
    return;
  }
  options_.pool->parallel_for(n, [&](int64_t j0, int64_t j1, int) { fn(j0, j1); });
}

// x: [n_tokens, in]. Channel sums run token by token in order, so they equal a
// plain double loop over all tokens bit for bit. Under shard_starts the sums of
// every shard after the first go to a partial, added to s when the next shard
// begins or by reduce().
void ActivationStats::accumulate(InputStats& s, const float* x, int64_t n_tokens) {
  const int64_t in = s.in_features;
  if (options_.channel_stats) {
    for_column_ranges(in, [&](int64_t j0, int64_t j1) {
      for (int64_t t = 0; t < n_tokens; ++t) {
        const float* row = x + t * in;
        for (int64_t j = j0; j < j1; ++j) s.abs_max[j] = std::max(s.abs_max[j], std::fabs(row[j]));
      }
    });
  }
  const std::vector<int64_t>& starts = shard_starts_;
  while (n_tokens > 0) {
    // The shard of token s.n_tokens: the number of starts at or before it.
    const auto next = std::upper_bound(starts.begin(), starts.end(), s.n_tokens);
    const int shard = static_cast<int>(next - starts.begin());
    const int64_t n = next == starts.end() ? n_tokens : std::min(n_tokens, *next - s.n_tokens);
    if (shard == 0) {
      add_sums(x, n, in, s.precision, s.abs_sum.data(), s.sum.data(), s.h_f32.data(), s.h_f64.data());
    } else {
      Partial& p = partials_[s.key];
      if (p.shard != shard) {
        fold(s, p);
        p.shard = shard;
        p.abs_sum.assign(static_cast<size_t>(in), 0.0);
        p.sum.assign(static_cast<size_t>(in), 0.0);
        const size_t h_size = static_cast<size_t>(in * in);
        if (s.precision == HessianPrecision::kFp32) p.h_f32.assign(h_size, 0.0f);
        if (sums_in_double(s.precision)) p.h_f64.assign(h_size, 0.0);
      }
      add_sums(x, n, in, s.precision, p.abs_sum.data(), p.sum.data(), p.h_f32.data(), p.h_f64.data());
    }
    s.n_tokens += n;
    x += n * in;
    n_tokens -= n;
  }
}

void ActivationStats::add_sums(const float* x, int64_t n_tokens, int64_t in, HessianPrecision precision,
                               double* abs_sum, double* sum, float* h_f32, double* h_f64) {
  if (options_.channel_stats) {
    for_column_ranges(in, [&](int64_t j0, int64_t j1) {
      for (int64_t t = 0; t < n_tokens; ++t) {
        const float* row = x + t * in;
        for (int64_t j = j0; j < j1; ++j) {
          abs_sum[j] += std::fabs(row[j]);
          sum[j] += row[j];
        }
      }
    });
  }
  // Upper triangle of H[in, in] += Xᵀ X, X = x as [n_tokens, in] row-major.
  const int n = static_cast<int>(in);
  if (precision == HessianPrecision::kFp32) {
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, n, static_cast<int>(n_tokens), 1.0f, x, n, 1.0f, h_f32, n);
  } else if (precision == HessianPrecision::kFp64) {
    // Converted to double kDoubleChunk tokens at a time, to bound the buffer.
    for (int64_t t0 = 0; t0 < n_tokens; t0 += kDoubleChunk) {
      const int64_t rows = std::min(kDoubleChunk, n_tokens - t0);
      x_f64_.assign(x + t0 * in, x + (t0 + rows) * in);
      cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, n, static_cast<int>(rows), 1.0, x_f64_.data(), n, 1.0, h_f64,
                  n);
    }
  } else if (precision == HessianPrecision::kBf16) {
    // This observation's XᵀX from BF16 inputs in FP32 sums (kernels/gemm_bf16.h), then
    // added to the double sums: one calibration window per observation.
    const Isa isa = active_isa();
    pack_bf16_panels_from_columns(x, n_tokens, in, in, x_bf16_, isa, options_.pool);
    h_window_.resize(static_cast<size_t>(in * in));
    gemm_bf16(panels_as_rows(x_bf16_), x_bf16_, h_window_.data(), in, {.upper_only = true}, isa, options_.pool);
    for_column_ranges(in, [&](int64_t j0, int64_t j1) {  // rows of H here
      for (int64_t j = j0; j < j1; ++j) {
        for (int64_t k = j; k < in; ++k) h_f64[j * in + k] += h_window_[j * in + k];
      }
    });
  }
}

// s ← s + p for the sums (the order a rank-ordered reduction uses); p is then empty.
void ActivationStats::fold(InputStats& s, Partial& p) {
  if (p.shard == 0) return;
  for (size_t j = 0; j < s.abs_sum.size(); ++j) s.abs_sum[j] = s.abs_sum[j] + p.abs_sum[j];
  for (size_t j = 0; j < s.sum.size(); ++j) s.sum[j] = s.sum[j] + p.sum[j];
  for (size_t i = 0; i < p.h_f32.size(); ++i) s.h_f32[i] = s.h_f32[i] + p.h_f32[i];
  for (size_t i = 0; i < p.h_f64.size(); ++i) s.h_f64[i] = s.h_f64[i] + p.h_f64[i];
  p = Partial();
}

namespace {

// The upper triangle (k >= j) of h [in, in], row by row: in·(in+1)/2 values, what a reduction sends.
template <typename T>
std::vector<T> pack_upper(const std::vector<T>& h, int64_t in) {
  std::vector<T> packed;
  packed.reserve(static_cast<size_t>(in * (in + 1) / 2));
  for (int64_t j = 0; j < in; ++j) packed.insert(packed.end(), h.begin() + j * in + j, h.begin() + (j + 1) * in);
  return packed;
}

template <typename T>
void unpack_upper(const std::vector<T>& packed, int64_t in, std::vector<T>& h) {
  auto it = packed.begin();
  for (int64_t j = 0; j < in; ++j) {
    std::copy(it, it + (in - j), h.begin() + j * in + j);
    it += in - j;
  }
}

}  // namespace

Status ActivationStats::reduce(Communicator& comm) {
  LB_RETURN_IF_ERROR(status_);
  for (auto& [key, p] : partials_) fold(inputs_.at(key), p);
  partials_.clear();
  if (comm.size() == 1) return Status::ok_status();
  // The same inputs on every rank, or the reductions below would pair different buffers.
  std::vector<int64_t> shape = {static_cast<int64_t>(inputs_.size()), 0};
  for (const auto& [key, s] : inputs_) shape[1] += s.in_features;
  std::vector<int64_t> total = shape;
  LB_RETURN_IF_ERROR(comm.allreduce_sum(total.data(), 2));
  if (total[0] != shape[0] * comm.size() || total[1] != shape[1] * comm.size()) {
    return make_error("activation statistics: rank {} observed {} inputs ({} features), not what every rank did",
                      comm.rank(), shape[0], shape[1]);
  }
  for (auto& [key, s] : inputs_) {
    const int64_t in = s.in_features;
    LB_RETURN_IF_ERROR(comm.allreduce_sum(&s.n_tokens, 1));
    LB_RETURN_IF_ERROR(comm.allreduce_sum(s.abs_sum.data(), in));
    LB_RETURN_IF_ERROR(comm.allreduce_sum(s.sum.data(), in));
    LB_RETURN_IF_ERROR(comm.allreduce_max(s.abs_max.data(), in));
    if (s.precision == HessianPrecision::kFp32) {
      std::vector<float> packed = pack_upper(s.h_f32, in);
      LB_RETURN_IF_ERROR(comm.allreduce_sum(packed.data(), static_cast<int64_t>(packed.size())));
      unpack_upper(packed, in, s.h_f32);
    } else if (sums_in_double(s.precision)) {
      std::vector<double> packed = pack_upper(s.h_f64, in);
      LB_RETURN_IF_ERROR(comm.allreduce_sum(packed.data(), static_cast<int64_t>(packed.size())));
      unpack_upper(packed, in, s.h_f64);
    }
  }
  return Status::ok_status();
}

const InputStats* ActivationStats::find(const std::string& linear_name) const {
  auto it = inputs_.find(shared_input_key(linear_name));
  return it == inputs_.end() ? nullptr : &it->second;
}

std::vector<double> ActivationStats::take_hessian(const std::string& linear_name) {
  auto it = inputs_.find(shared_input_key(linear_name));
  if (it == inputs_.end()) return {};
  std::vector<double> h = it->second.take_hessian();
  erase(linear_name);
  return h;
}

void ActivationStats::erase(const std::string& linear_name) {
  inputs_.erase(shared_input_key(linear_name));
  partials_.erase(shared_input_key(linear_name));
}

void ActivationStats::clear() {
  inputs_.clear();
  partials_.clear();
  seen_.clear();
  x_f64_ = std::vector<double>();
  status_ = Status::ok_status();
}

}  // namespace lowbit
