// Lloyd's algorithm (1-D k-means) for non-uniform codebooks (KVQuant section
// 3.3; Lloyd 1982). Given samples y_i with weights w_i >= 0 and levels
// c_0 < ... < c_{K-1}, one iteration
//   assigns each sample to its nearest level: the cells are split at the
//     midpoints (c_j + c_{j+1}) / 2 (a sample on a midpoint goes to the upper cell),
//   moves each level to the weighted mean of its cell, Σ w y / Σ w (an empty cell
//     keeps its level),
// which never increases Σ w (y - q(y))². Samples are sorted once, so an iteration
// costs K binary searches on prefix sums. Levels start on the uniform grid over
// [lo, hi] (the integer grid, so the fit is never worse than uniform) and are kept
// strictly increasing (optionally with the end levels pinned to lo and hi). Weights may come from a sensitivity estimate (KVQuant
// weights by Fisher information); empty weights mean all ones.
#pragma once

#include <vector>

#include "core/status.h"

namespace lowbit {

struct LloydOptions {
  int max_iterations = 100;
  double tolerance = 1e-7;  // stop when no level moves more than this
  // Keep the first and last level on lo and hi. KV groups are normalised so that
  // their minimum and maximum land on lo and hi, and those extremes dominate the
  // attention error (large keys); pinning keeps them exact as the integer grid
  // does, and Lloyd moves only the interior levels.
  bool pin_ends = true;
};

// Errors: fewer than 2 levels, no samples, a non-finite sample, a weight vector of
// the wrong size, or negative weights.
Expected<std::vector<float>> fit_lloyd_codebook(std::vector<float> samples, std::vector<float> weights, int n_levels,
                                                float lo, float hi, const LloydOptions& options = {});

// The weighted mean and standard deviation Σ w y / Σ w, sqrt(Σ w (y - mean)² / Σ w)
// of the samples, or (levels given) of their codes q(y), the nearest levels.
struct Moments {
  double mean = 0.0;
  double std = 0.0;
};
Moments sample_moments(const std::vector<float>& samples, const std::vector<float>& weights);
Moments coded_moments(const std::vector<float>& samples, const std::vector<float>& weights,
                      const std::vector<float>& levels);

// KVQuant's Q-Norm (Hooper et al. 2024, "KVQuant: Towards 10 Million Context
// Length LLM Inference with KV Cache Quantization", Q-Norm for the NUQ datatype): coding shifts the distribution (a Lloyd codebook's codes have the
// data's mean when no level is pinned, but a smaller variance: Var y = Var q(y) +
// MSE), which at 2-3 bits biases the attention. Q-Norm maps the levels by the
// affine c ← (c − μ_q)·σ/σ_q + μ, where μ, σ are the samples' moments and μ_q,
// σ_q those of their codes, so the codes match the data's mean and standard
// deviation. It runs once per codebook, offline: nothing changes at run time.
// The map moves the cell boundaries, so codes are reassigned and the step is
// repeated (at most max_iterations times) until the coded moments are within
// tolerance·σ of the data's; when the reassignment leaves every sample in its
// cell the first step is exact (the codes are an affine map of the old ones).
// Levels stay strictly increasing (σ/σ_q > 0); a step is skipped in scale when
// σ_q or σ is 0 (one code for all samples, or constant data). Errors as
// fit_lloyd_codebook's, and for levels that check_codebook_levels refuses.
Expected<std::vector<float>> normalize_codebook_moments(const std::vector<float>& samples,
                                                        const std::vector<float>& weights, std::vector<float> levels,
                                                        int max_iterations = 20, double tolerance = 1e-6);

// Weighted mean squared error Σ w (y - q(y))² / Σ w of coding samples with the
// nearest level (the metric Lloyd's algorithm minimises).
double codebook_mse(const std::vector<float>& samples, const std::vector<float>& weights,
                    const std::vector<float>& levels);

}  // namespace lowbit
