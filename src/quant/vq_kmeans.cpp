// Weighted k-means (vq_kmeans.h).
#include "quant/vq_kmeans.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/splitmix64.h"
#include "core/thread_pool.h"

namespace lowbit {
namespace {

float weighted_distance(const float* x, const float* c, const float* w, int d) {
  float sum = 0.0f;
  for (int j = 0; j < d; ++j) {
    const float e = x[j] - c[j];
    sum += (w != nullptr ? w[j] : 1.0f) * e * e;
  }
  return sum;
}

// Index i with prefix(i) <= target < prefix(i + 1) over weights p [n] (Σ p > 0).
int64_t draw_proportional(const std::vector<double>& p, double target) {
  double acc = 0.0;
  int64_t last = 0;
  for (int64_t i = 0; i < static_cast<int64_t>(p.size()); ++i) {
    if (p[i] <= 0.0) continue;
    last = i;
    acc += p[i];
    if (target < acc) return i;
  }
  return last;  // target rounded past the total
}

}  // namespace

std::vector<float> transpose_centroids(const float* centroids, int k, int d) {
  std::vector<float> t(static_cast<size_t>(k) * d);
  for (int c = 0; c < k; ++c) {
    for (int j = 0; j < d; ++j) t[static_cast<int64_t>(j) * k + c] = centroids[static_cast<int64_t>(c) * d + j];
  }
  return t;
}

int32_t nearest_centroid(const float* centroids_t, int k, int d, const float* x, const float* w, float* distance) {
  constexpr int kChunk = 256;  // centroids per pass: the distances live on the stack
  float acc[kChunk];
  int32_t best = 0;
  float best_d = std::numeric_limits<float>::infinity();
  for (int c0 = 0; c0 < k; c0 += kChunk) {
    const int n = std::min(kChunk, k - c0);
    std::fill_n(acc, n, 0.0f);
    for (int j = 0; j < d; ++j) {
      const float xj = x[j], wj = w != nullptr ? w[j] : 1.0f;
      const float* cj = centroids_t + static_cast<int64_t>(j) * k + c0;
      if (n == kChunk) {  // a constant trip count, which -O2's cheap vectorizer takes
        for (int c = 0; c < kChunk; ++c) {
          const float e = xj - cj[c];
          acc[c] += wj * e * e;
        }
      } else {
        for (int c = 0; c < n; ++c) {
          const float e = xj - cj[c];
          acc[c] += wj * e * e;
        }
      }
    }
    for (int c = 0; c < n; ++c) {
      if (acc[c] < best_d) {
        best_d = acc[c];
        best = c0 + c;
      }
    }
  }
  if (distance != nullptr) *distance = best_d;
  return best;
}

Expected<KmeansResult> weighted_kmeans(const float* points, const float* weights, int64_t n, int d,
                                       const KmeansOptions& options) {
  const int k = options.centroids;
  if (n < 1 || d < 1 || k < 1 || options.iterations < 0) {
    return make_error("k-means: {} points of dimension {}, {} centroids, {} iterations", n, d, k, options.iterations);
  }
  for (int64_t i = 0; i < n * d; ++i) {
    if (!std::isfinite(points[i]) || (weights != nullptr && !(weights[i] >= 0.0f && std::isfinite(weights[i])))) {
      return make_error("k-means: point {} coordinate {} (value {}, weight {}) is not finite with weight >= 0", i / d,
                        i % d, points[i], weights != nullptr ? weights[i] : 1.0f);
    }
  }
  auto point = [&](int64_t i) { return points + i * d; };
  auto weight = [&](int64_t i) { return weights != nullptr ? weights + i * d : nullptr; };
  KmeansResult out;
  out.centroids.resize(static_cast<size_t>(k) * d);
  out.assign.assign(static_cast<size_t>(n), 0);
  std::vector<float> dist(static_cast<size_t>(n));  // [n] distance to the assigned / nearest centroid

  // k-means++ seeding.
  SplitMix64 rng{options.seed};
  std::vector<double> p(static_cast<size_t>(n));
  const int64_t first = std::min<int64_t>(n - 1, static_cast<int64_t>(rng.uniform() * static_cast<double>(n)));
  std::copy_n(point(first), d, out.centroids.data());
  for (int64_t i = 0; i < n; ++i) dist[i] = weighted_distance(point(i), out.centroids.data(), weight(i), d);
  for (int c = 1; c < k; ++c) {
    double total = 0.0;
    for (int64_t i = 0; i < n; ++i) total += (p[i] = dist[i]);
    // All points sit on centroids already: repeat the first one (never chosen over it, ties go low).
    const int64_t pick = total > 0.0 ? draw_proportional(p, rng.uniform() * total) : first;
    float* centroid = out.centroids.data() + static_cast<int64_t>(c) * d;
    std::copy_n(point(pick), d, centroid);
    for (int64_t i = 0; i < n; ++i) dist[i] = std::min(dist[i], weighted_distance(point(i), centroid, weight(i), d));
  }

  std::vector<float> centroids_t = transpose_centroids(out.centroids.data(), k, d);  // [d, k] what assign() reads
  // Assignment step: returns whether any assignment changed; dist gets each point's distance.
  auto assign = [&]() {
    std::vector<uint8_t> changed(static_cast<size_t>(options.pool != nullptr ? options.pool->size() : 1), 0);
    auto body = [&](int64_t begin, int64_t end, int thread) {
      for (int64_t i = begin; i < end; ++i) {
        const int32_t a = nearest_centroid(centroids_t.data(), k, d, point(i), weight(i), &dist[i]);
        if (a != out.assign[i]) changed[thread] = 1;
        out.assign[i] = a;
      }
    };
    if (options.pool != nullptr && n > 1) {
      options.pool->parallel_for(n, body);
    } else {
      body(0, n, 0);
    }
    return std::any_of(changed.begin(), changed.end(), [](uint8_t c) { return c != 0; });
  };
  assign();
  std::vector<double> num(static_cast<size_t>(k) * d), den(num.size());  // [k, d]
  std::vector<int64_t> count(static_cast<size_t>(k));
  for (int it = 0; it < options.iterations; ++it) {
    std::fill(num.begin(), num.end(), 0.0);
    std::fill(den.begin(), den.end(), 0.0);
    std::fill(count.begin(), count.end(), 0);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t a = out.assign[i];
      ++count[a];
      for (int j = 0; j < d; ++j) {
        const double w = weights != nullptr ? weights[i * d + j] : 1.0;
        num[a * d + j] += w * point(i)[j];
        den[a * d + j] += w;
      }
    }
    for (int c = 0; c < k; ++c) {
      float* centroid = out.centroids.data() + static_cast<int64_t>(c) * d;
      if (count[c] == 0) {
        // Empty: re-seed at the point farthest from its centroid, which then counts as on it.
        const int64_t far = std::max_element(dist.begin(), dist.end()) - dist.begin();
        if (dist[far] > 0.0f) {
          std::copy_n(point(far), d, centroid);
          dist[far] = 0.0f;
        }
        continue;
      }
      for (int j = 0; j < d; ++j) {
        if (den[c * d + j] > 0.0) centroid[j] = static_cast<float>(num[c * d + j] / den[c * d + j]);
      }
    }
    out.iterations = it + 1;
    centroids_t = transpose_centroids(out.centroids.data(), k, d);
    if (!assign()) break;
  }
  out.error = 0.0;
  for (int64_t i = 0; i < n; ++i) out.error += dist[i];
  return out;
}

}  // namespace lowbit
