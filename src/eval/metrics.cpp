#include "eval/metrics.h"

#include <algorithm>
#include <cmath>

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

}  // namespace lowbit
