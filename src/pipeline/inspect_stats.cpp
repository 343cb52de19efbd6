#include "pipeline/inspect_stats.h"

#include <algorithm>
#include <cmath>

namespace lowbit {

double pearson_kurtosis(const float* values, int64_t n) {
  if (n <= 0) return 0.0;
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += values[i];
  const double mean = sum / static_cast<double>(n);
  double m2 = 0.0;
  double m4 = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = values[i] - mean;
    const double d2 = d * d;
    m2 += d2;
    m4 += d2 * d2;
  }
  m2 /= static_cast<double>(n);
  m4 /= static_cast<double>(n);
  return m2 > 0.0 ? m4 / (m2 * m2) : 0.0;
}

double lower_median(std::vector<float> values) {
  if (values.empty()) return 0.0;
  const auto mid = values.begin() + static_cast<std::ptrdiff_t>((values.size() - 1) / 2);
  std::nth_element(values.begin(), mid, values.end());
  return *mid;
}

std::vector<ChannelValue> top_channels(const std::vector<float>& channel_max, int k) {
  std::vector<ChannelValue> all(channel_max.size());
  for (size_t j = 0; j < channel_max.size(); ++j) all[j] = {static_cast<int64_t>(j), channel_max[j]};
  const size_t n = std::min(all.size(), static_cast<size_t>(std::max(k, 0)));
  std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n), all.end(),
                    [](const ChannelValue& a, const ChannelValue& b) {
                      return a.value != b.value ? a.value > b.value : a.channel < b.channel;
                    });
  all.resize(n);
  return all;
}

MatrixStats matrix_stats(const float* x, int64_t n_tokens, int64_t channels, int top_k, bool with_median_abs) {
  MatrixStats s;
  s.n_tokens = n_tokens;
  s.channels = channels;
  s.channel_max.assign(static_cast<size_t>(channels), 0.0f);
  const int64_t n = n_tokens * channels;
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* row = x + t * channels;
    for (int64_t j = 0; j < channels; ++j) s.channel_max[j] = std::max(s.channel_max[j], std::fabs(row[j]));
  }
  s.top = top_channels(s.channel_max, top_k);
  for (float m : s.channel_max) s.absmax = std::max(s.absmax, static_cast<double>(m));
  s.kurtosis = pearson_kurtosis(x, n);
  s.profile_kurtosis = pearson_kurtosis(s.channel_max.data(), channels);
  s.median_channel_max = lower_median(s.channel_max);
  s.max_median_ratio = s.median_channel_max > 0.0 ? s.absmax / s.median_channel_max : 0.0;
  if (n > 0) {
    double sum_sq = 0.0;
    for (int64_t i = 0; i < n; ++i) sum_sq += static_cast<double>(x[i]) * x[i];
    s.rms = std::sqrt(sum_sq / static_cast<double>(n));
    const double rel = kNearZeroRelative * s.absmax;
    int64_t below_rel = 0;
    int64_t below_abs = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double a = std::fabs(x[i]);
      below_rel += a < rel;
      below_abs += a < kNearZeroAbsolute;
    }
    s.near_zero_rel = static_cast<double>(below_rel) / static_cast<double>(n);
    s.near_zero_abs = static_cast<double>(below_abs) / static_cast<double>(n);
  }
  if (with_median_abs) {
    std::vector<float> a(x, x + n);
    for (float& v : a) v = std::fabs(v);
    s.median_abs = lower_median(std::move(a));
  }
  return s;
}

std::vector<MassiveActivation> find_massive(const float* h, int64_t n_tokens, int64_t channels, double median_abs,
                                            int layer, double abs_threshold, double ratio) {
  const double threshold = std::max(abs_threshold, ratio * median_abs);
  std::vector<MassiveActivation> found;
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t j = 0; j < channels; ++j) {
      const float v = h[t * channels + j];
      if (std::fabs(v) > threshold) {
        found.push_back({layer, t, j, v, median_abs > 0.0 ? std::fabs(v) / median_abs : 0.0});
      }
    }
  }
  std::stable_sort(found.begin(), found.end(), [](const MassiveActivation& a, const MassiveActivation& b) {
    return std::fabs(a.value) > std::fabs(b.value);
  });
  return found;
}

}  // namespace lowbit
