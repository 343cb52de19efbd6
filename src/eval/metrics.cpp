#include "eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace lowbit {

double RunningMean::stderr_of_mean() const {
  if (n_ < 2) return 0.0;
  const double m = mean();
  const double variance = std::max(0.0, sum_sq_ / n_ - m * m);
  return std::sqrt(variance / static_cast<double>(n_ - 1));
}

void log_softmax(const float* logits, int vocab, std::vector<double>& out) {
  out.resize(vocab);
  double max_value = logits[0];
  for (int i = 1; i < vocab; ++i) max_value = std::max(max_value, static_cast<double>(logits[i]));
  double sum = 0.0;
  for (int i = 0; i < vocab; ++i) sum += std::exp(logits[i] - max_value);
  const double log_z = max_value + std::log(sum);
  for (int i = 0; i < vocab; ++i) out[i] = logits[i] - log_z;
}

double kl_divergence(const std::vector<double>& base_logp, const std::vector<double>& model_logp) {
  double kl = 0.0;
  for (size_t i = 0; i < base_logp.size(); ++i) {
    kl += std::exp(base_logp[i]) * (base_logp[i] - model_logp[i]);
  }
  return std::max(0.0, kl);  // rounding can give tiny negatives for identical rows
}

int argmax(const std::vector<double>& values) {
  return static_cast<int>(std::max_element(values.begin(), values.end()) - values.begin());
}

double quantile(std::vector<double> values, double q) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const double position = q * static_cast<double>(values.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(position));
  const size_t hi = std::min(values.size() - 1, lo + 1);
  const double frac = position - static_cast<double>(lo);
  return values[lo] * (1.0 - frac) + values[hi] * frac;
}

namespace {

// Ranks 1..n of values [n]; a run of t equal values at sorted positions
// p+1..p+t all get p + (t + 1) / 2.
std::vector<double> average_ranks(const std::vector<double>& values) {
  std::vector<size_t> order(values.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t x, size_t y) { return values[x] < values[y]; });
  std::vector<double> ranks(values.size());
  for (size_t start = 0; start < order.size();) {
    size_t end = start + 1;
    while (end < order.size() && values[order[end]] == values[order[start]]) ++end;
    const double rank = 0.5 * static_cast<double>(start + 1 + end);  // mean of start+1 .. end
    for (size_t k = start; k < end; ++k) ranks[order[k]] = rank;
    start = end;
  }
  return ranks;
}

}  // namespace

double spearman_rank_correlation(const std::vector<double>& a, const std::vector<double>& b) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (a.size() != b.size() || a.size() < 2) return nan;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) || std::isnan(b[i])) return nan;
  }
  const std::vector<double> ra = average_ranks(a);
  const std::vector<double> rb = average_ranks(b);
  const double mean = 0.5 * static_cast<double>(a.size() + 1);  // of ranks 1..n, ties or not
  double cov = 0.0, var_a = 0.0, var_b = 0.0;
  for (size_t i = 0; i < ra.size(); ++i) {
    cov += (ra[i] - mean) * (rb[i] - mean);
    var_a += (ra[i] - mean) * (ra[i] - mean);
    var_b += (rb[i] - mean) * (rb[i] - mean);
  }
  if (var_a == 0.0 || var_b == 0.0) return nan;
  return cov / std::sqrt(var_a * var_b);
}

}  // namespace lowbit
