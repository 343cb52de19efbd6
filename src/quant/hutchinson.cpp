#include "quant/hutchinson.h"

#include <cmath>
#include <random>

namespace lowbit {

void fill_rademacher(std::mt19937_64& rng, std::vector<float>& v) {
  uint64_t bits = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i % 64 == 0) bits = rng();
    v[i] = (bits >> (i % 64)) & 1 ? 1.0f : -1.0f;
  }
}

Expected<TraceEstimate> hutchinson_trace(int64_t n, int probes, uint64_t seed, const QuadraticForm& quad_form) {
  if (n < 1) return make_error("hutchinson trace: the dimension must be at least 1, got {}", n);
  if (probes < 1) return make_error("hutchinson trace: probes must be at least 1, got {}", probes);
  std::mt19937_64 rng(seed);
  std::vector<float> v(static_cast<size_t>(n));  // [n] one probe
  std::vector<double> q(probes);                  // [probes] v_kᵀ A v_k
  for (int k = 0; k < probes; ++k) {
    fill_rademacher(rng, v);
    Expected<double> value = quad_form(v);
    if (!value.ok()) return value.status().with_context(fmt::format("hutchinson trace: probe {}", k));
    if (!std::isfinite(*value)) return make_error("hutchinson trace: probe {} gave vᵀAv = {}", k, *value);
    q[k] = *value;
  }
  // Shifted by the first probe, so equal probes give that value and a stderr of exactly 0.
  double shifted = 0.0;
  for (double x : q) shifted += x - q[0];
  TraceEstimate t;
  t.probes = probes;
  t.mean = q[0] + shifted / probes;
  if (probes > 1) {
    double squares = 0.0;
    for (double x : q) squares += (x - t.mean) * (x - t.mean);
    t.stderr_of_mean = std::sqrt(squares / (probes - 1) / probes);
  }
  return t;
}

}  // namespace lowbit
