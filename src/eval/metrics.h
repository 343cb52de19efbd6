// Per-token metrics of language-model evaluation and their summary statistics,
// as llama.cpp's perplexity tool reports them.
#pragma once

#include <cstdint>
#include <vector>

namespace lowbit {

// Mean and standard error of the mean of a stream of values (double accumulation).
class RunningMean {
 public:
  void add(double x) {
    ++n_;
    sum_ += x;
    sum_sq_ += x * x;
  }
  int64_t count() const { return n_; }
  double mean() const { return n_ > 0 ? sum_ / n_ : 0.0; }
  // sqrt(var / (n - 1)) with var = E[x²] - E[x]²; 0 for fewer than two values.
  double stderr_of_mean() const;

 private:
  int64_t n_ = 0;
  double sum_ = 0.0;
  double sum_sq_ = 0.0;
};

// log-softmax of one row of logits [vocab], in double.
void log_softmax(const float* logits, int vocab, std::vector<double>& out);

// KL(P_base || P_model) = Σ p_base (log p_base − log p_model), from log-probabilities.
double kl_divergence(const std::vector<double>& base_logp, const std::vector<double>& model_logp);

// Index of the largest value; ties go to the lowest index.
int argmax(const std::vector<double>& values);

// The q-quantile (0..1) of values by linear interpolation between order statistics.
double quantile(std::vector<double> values, double q);

// Spearman's rank correlation: the Pearson correlation of the ranks of a and b,
// ties given the average of the ranks they span (so not 1 − 6 Σd² / (n(n² − 1)),
// which holds only without ties). NaN for fewer than 2 points, sizes that
// differ, a NaN value, or a constant vector (its ranks have no variance).
double spearman_rank_correlation(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace lowbit
