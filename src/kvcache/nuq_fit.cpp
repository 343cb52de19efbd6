#include "kvcache/nuq_fit.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "kvcache/kv_codebooks.h"

namespace lowbit {
namespace {

float nearest_level(const std::vector<float>& levels, float y) {
  const auto it = std::lower_bound(levels.begin(), levels.end(), y);
  if (it == levels.begin()) return levels.front();
  if (it == levels.end()) return levels.back();
  const float above = *it;
  const float below = *(it - 1);
  return (y - below < above - y) ? below : above;
}

}  // namespace

Expected<std::vector<float>> fit_lloyd_codebook(std::vector<float> samples, std::vector<float> weights, int n_levels,
                                                float lo, float hi, const LloydOptions& options) {
  if (n_levels < 2) return make_error("Lloyd codebook: need at least 2 levels, got {}", n_levels);
  if (samples.empty()) return make_error("Lloyd codebook: no samples");
  if (!(lo < hi)) return make_error("Lloyd codebook: empty range [{}, {}]", lo, hi);
  if (weights.empty()) weights.assign(samples.size(), 1.0f);
  if (weights.size() != samples.size()) {
    return make_error("Lloyd codebook: {} weights for {} samples", weights.size(), samples.size());
  }
  for (size_t i = 0; i < samples.size(); ++i) {
    if (!std::isfinite(samples[i])) return make_error("Lloyd codebook: sample {} is not finite", i);
    if (!(weights[i] >= 0.0f)) return make_error("Lloyd codebook: weight {} is negative or NaN", i);
  }
  // Sort samples (carrying weights), then prefix sums of w and w·y.
  std::vector<size_t> order(samples.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return samples[a] < samples[b]; });
  const size_t n = samples.size();
  std::vector<float> y(n);
  std::vector<double> cum_w(n + 1, 0.0), cum_wy(n + 1, 0.0);
  for (size_t i = 0; i < n; ++i) {
    y[i] = samples[order[i]];
    const double w = weights[order[i]];
    cum_w[i + 1] = cum_w[i] + w;
    cum_wy[i + 1] = cum_wy[i] + w * y[i];
  }

  std::vector<float> levels(n_levels);
  for (int j = 0; j < n_levels; ++j) {
    levels[j] = static_cast<float>(lo + (static_cast<double>(hi) - lo) * j / (n_levels - 1));
  }
  for (int iter = 0; iter < options.max_iterations; ++iter) {
    double moved = 0.0;
    size_t begin = 0;
    std::vector<float> next(levels);
    for (int j = 0; j < n_levels; ++j) {
      size_t end = n;
      if (j + 1 < n_levels) {
        const float mid = 0.5f * (levels[j] + levels[j + 1]);
        end = std::lower_bound(y.begin(), y.end(), mid) - y.begin();  // y < mid stays in cell j
      }
      const double w = cum_w[end] - cum_w[begin];
      const bool pinned = options.pin_ends && (j == 0 || j + 1 == n_levels);
      if (!pinned && end > begin && w > 0.0) next[j] = static_cast<float>((cum_wy[end] - cum_wy[begin]) / w);
      begin = end;
    }
    for (int j = 1; j < n_levels; ++j) {
      if (!(next[j] > next[j - 1])) next[j] = std::nextafter(next[j - 1], std::numeric_limits<float>::infinity());
    }
    for (int j = 0; j < n_levels; ++j) moved = std::max(moved, std::fabs(static_cast<double>(next[j]) - levels[j]));
    levels = std::move(next);
    if (moved <= options.tolerance) break;
  }
  return levels;
}

namespace {

// Shared checks of the samples, weights and levels of the Q-Norm helpers.
Status check_samples(const std::vector<float>& samples, const std::vector<float>& weights, const char* what) {
  if (samples.empty()) return make_error("{}: no samples", what);
  if (!weights.empty() && weights.size() != samples.size()) {
    return make_error("{}: {} weights for {} samples", what, weights.size(), samples.size());
  }
  for (size_t i = 0; i < samples.size(); ++i) {
    if (!std::isfinite(samples[i])) return make_error("{}: sample {} is not finite", what, i);
    if (!weights.empty() && !(weights[i] >= 0.0f)) return make_error("{}: weight {} is negative or NaN", what, i);
  }
  return Status::ok_status();
}

// Moments of f(y_i) under weights w_i (two passes: mean, then squared deviations).
template <typename F>
Moments moments_of(const std::vector<float>& samples, const std::vector<float>& weights, F f) {
  double sw = 0.0, swy = 0.0;
  for (size_t i = 0; i < samples.size(); ++i) {
    const double w = weights.empty() ? 1.0 : weights[i];
    sw += w;
    swy += w * f(samples[i]);
  }
  Moments m;
  if (!(sw > 0.0)) return m;
  m.mean = swy / sw;
  double sd = 0.0;
  for (size_t i = 0; i < samples.size(); ++i) {
    const double w = weights.empty() ? 1.0 : weights[i];
    const double d = f(samples[i]) - m.mean;
    sd += w * d * d;
  }
  m.std = std::sqrt(sd / sw);
  return m;
}

}  // namespace

Moments sample_moments(const std::vector<float>& samples, const std::vector<float>& weights) {
  return moments_of(samples, weights, [](float y) { return static_cast<double>(y); });
}

Moments coded_moments(const std::vector<float>& samples, const std::vector<float>& weights,
                      const std::vector<float>& levels) {
  return moments_of(samples, weights, [&](float y) { return static_cast<double>(nearest_level(levels, y)); });
}

Expected<std::vector<float>> normalize_codebook_moments(const std::vector<float>& samples,
                                                        const std::vector<float>& weights, std::vector<float> levels,
                                                        int max_iterations, double tolerance) {
  LB_RETURN_IF_ERROR(check_samples(samples, weights, "Q-Norm"));
  LB_RETURN_IF_ERROR(check_codebook_levels(levels, "Q-Norm"));
  const Moments target = sample_moments(samples, weights);
  for (int iter = 0; iter < max_iterations; ++iter) {
    const Moments coded = coded_moments(samples, weights, levels);
    if (std::fabs(coded.mean - target.mean) <= tolerance * target.std &&
        std::fabs(coded.std - target.std) <= tolerance * target.std) {
      break;
    }
    const double a = coded.std > 0.0 && target.std > 0.0 ? target.std / coded.std : 1.0;
    for (float& c : levels) c = static_cast<float>((c - coded.mean) * a + target.mean);
    for (size_t j = 1; j < levels.size(); ++j) {
      if (!(levels[j] > levels[j - 1])) levels[j] = std::nextafter(levels[j - 1], std::numeric_limits<float>::infinity());
    }
  }
  return levels;
}

double codebook_mse(const std::vector<float>& samples, const std::vector<float>& weights,
                    const std::vector<float>& levels) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < samples.size(); ++i) {
    const double w = weights.empty() ? 1.0 : weights[i];
    const double d = samples[i] - nearest_level(levels, samples[i]);
    num += w * d * d;
    den += w;
  }
  return den > 0.0 ? num / den : 0.0;
}

}  // namespace lowbit
