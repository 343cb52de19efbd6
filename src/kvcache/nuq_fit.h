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

// Weighted mean squared error Σ w (y - q(y))² / Σ w of coding samples with the
// nearest level (the metric Lloyd's algorithm minimises).
double codebook_mse(const std::vector<float>& samples, const std::vector<float>& weights,
                    const std::vector<float>& levels);

}  // namespace lowbit
