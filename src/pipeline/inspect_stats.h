// Outlier statistics of activation matrices, for `lowbit inspect` (issue 5).
//
// Of a linear layer's input X [n_tokens, channels]:
//   channel max    m_j = max_t |x_tj|                    [channels]
//   absmax         max_j m_j
//   rms            sqrt(mean over all values of x²) (unchanged by an orthogonal
//                  rotation of the rows: a check that a rotated run computes the same)
//   kurtosis       Pearson's β₂ = μ₄ / μ₂² of all values, central moments
//                  (3 for a Gaussian; heavy tails and outlier channels raise it)
//   profile kurtosis  β₂ of the channel-max profile m (high when a few channels
//                  stand far above the rest, as SmoothQuant's outlier channels do)
//   max/median     max_j m_j / median_j m_j
//   near zero      fraction of values with |x| < 1e-3 · absmax (relative to the
//                  whole matrix: what per-tensor quantization rounds to zero first)
//                  and with |x| < 1e-2 (absolute)
// Of the residual stream h [n_tokens, dim] (the hidden state entering a layer):
// the same channel statistics, the median of |h| over all values, and the massive
// activations of Sun et al. 2024 ("Massive Activations in Large Language Models"):
// entries with |h| > 100 and |h| > 1000 · median|h|.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lowbit {

inline constexpr double kNearZeroRelative = 1e-3;  // |x| < 1e-3 · absmax
inline constexpr double kNearZeroAbsolute = 1e-2;  // |x| < 1e-2
inline constexpr double kMassiveAbsolute = 100.0;  // Sun et al. 2024
inline constexpr double kMassiveRatio = 1000.0;    // times median|h|

struct ChannelValue {
  int64_t channel = 0;
  float value = 0.0f;  // max_t |x_tj|
};

struct MatrixStats {
  int64_t n_tokens = 0;
  int64_t channels = 0;
  std::vector<float> channel_max;  // [channels] max_t |x_tj|
  std::vector<ChannelValue> top;   // the top_k largest channel maxima, largest first (ties: lower index first)
  double absmax = 0.0;
  double rms = 0.0;               // sqrt(Σ x² / (n_tokens · channels))
  double kurtosis = 0.0;          // β₂ of all values; 0 when every value is equal
  double profile_kurtosis = 0.0;  // β₂ of channel_max
  double median_channel_max = 0.0;
  double max_median_ratio = 0.0;  // absmax / median_channel_max (0 when the median is 0)
  double near_zero_rel = 0.0;     // fraction with |x| < kNearZeroRelative · absmax
  double near_zero_abs = 0.0;     // fraction with |x| < kNearZeroAbsolute
  double median_abs = 0.0;        // median of |x| over all values (lower median for an even count)
};

// Pearson's kurtosis μ₄/μ₂² of values[0..n) (central moments in double); 0 when
// n == 0 or the variance is 0.
double pearson_kurtosis(const float* values, int64_t n);

// The lower median (element n/2 of the sorted values, counting from 0 on n odd and
// (n-1)/2 on n even) of values[0..n); 0 when n == 0.
double lower_median(std::vector<float> values);

// The k largest entries of `channel_max`, largest first, ties by lower channel.
std::vector<ChannelValue> top_channels(const std::vector<float>& channel_max, int k);

// Every statistic above of x [n_tokens, channels]. with_median_abs: also the
// median of |x| over all values (a copy of x; needed for the residual stream).
MatrixStats matrix_stats(const float* x, int64_t n_tokens, int64_t channels, int top_k, bool with_median_abs);

struct MassiveActivation {
  int layer = 0;      // the residual stream entering this layer (n_layers: after the last one)
  int64_t token = 0;  // row of the matrix the value came from (sample · seq_len + position)
  int64_t channel = 0;
  float value = 0.0f;  // signed
  double ratio = 0.0;  // |value| / median|h|
};

// Entries of h [n_tokens, channels] with |h| > abs_threshold and |h| > ratio · median_abs,
// largest |value| first. median_abs: median of |h| (MatrixStats::median_abs).
std::vector<MassiveActivation> find_massive(const float* h, int64_t n_tokens, int64_t channels, double median_abs,
                                            int layer, double abs_threshold = kMassiveAbsolute,
                                            double ratio = kMassiveRatio);

}  // namespace lowbit
