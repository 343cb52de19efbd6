// Weighted k-means on short vectors, for the VQ codebooks (quant/vq_quantize.h).
//
// Points x_i in R^d with per-coordinate weights w_ij >= 0; the distance of a
// point to a centroid is D(x_i, c) = Σ_j w_ij (x_ij − c_j)², so the objective
// Σ_i min_k D(x_i, c_k) is the importance-weighted squared error.
//   init   k-means++ (Arthur, Vassilvitskii 2007): the first centroid is a
//          uniformly drawn point, each next one a point drawn with probability
//          proportional to its distance to the nearest centroid so far;
//   Lloyd  assign every point to its nearest centroid (ties: the lower index),
//          move each centroid to the weighted mean of its points per coordinate
//          (c_kj = Σ w_ij x_ij / Σ w_ij; a coordinate of zero weight keeps its
//          value), re-seed an empty cluster at the point farthest from its
//          centroid; at most `iterations` rounds, stopping when no assignment
//          changes.
// Deterministic: the draws come from splitmix64 seeded by `seed` (no <random>
// distributions, whose output differs between standard libraries), and the
// result does not depend on the pool (only the assignment step runs on it).
// Cost: O(iterations · n · k · d).
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"

namespace lowbit {

class ThreadPool;

struct KmeansOptions {
  int centroids = 256;   // k
  int iterations = 20;   // Lloyd rounds at most
  uint64_t seed = 0;
  ThreadPool* pool = nullptr;  // assignment step in parallel (null: this thread)
};

struct KmeansResult {
  std::vector<float> centroids;   // [k, d]
  std::vector<int32_t> assign;    // [n] the nearest centroid of each point (ties: lower index)
  double error = 0.0;             // Σ_i D(x_i, c_assign[i])
  int iterations = 0;             // Lloyd rounds run
};

// points [n, d], weights [n, d] or null (all 1). n >= 1, d >= 1, k >= 1; with
// fewer distinct points than k, the extra centroids repeat points.
Expected<KmeansResult> weighted_kmeans(const float* points, const float* weights, int64_t n, int d,
                                       const KmeansOptions& options);

// centroids [k, d] -> the same transposed, [d, k] (coordinate j of centroid c at j * k + c).
std::vector<float> transpose_centroids(const float* centroids, int k, int d);

// The nearest of the centroids, given transposed (centroids_t [d, k]), to x [d]
// under weights w [d] (null: 1); ties: the lower index. *distance (if not null)
// gets its weighted distance Σ_j w_j (x_j − c_j)², summed in j order (the layout
// lets the compiler run the k centroids in SIMD lanes; the sums are the same floats).
int32_t nearest_centroid(const float* centroids_t, int k, int d, const float* x, const float* w, float* distance);

}  // namespace lowbit
