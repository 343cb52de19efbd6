// The templates behind trellis_viterbi_steps.h, included by one translation unit
// per ISA inside its own namespace. Loops are branch-free over contiguous
// arrays with the predecessor count K a compile-time constant where the
// parameter sets need it, so the compiler vectorises them.
#pragma once

#include <algorithm>

namespace lowbit::TRELLIS_STEPS_NS {

template <int K>
void min_fixed(const float* prev, int j_count, float* m) {
  for (int j = 0; j < j_count; ++j) {
    const float* row = prev + j * K;
    float v = row[0];
    for (int p = 1; p < K; ++p) v = row[p] < v ? row[p] : v;
    m[j] = v;
  }
}

inline void min_over_predecessors(const float* prev, int k_bits, int j_count, float* m) {
  switch (k_bits) {
    case 1: return min_fixed<2>(prev, j_count, m);
    case 2: return min_fixed<4>(prev, j_count, m);
    case 3: return min_fixed<8>(prev, j_count, m);
    case 4: return min_fixed<16>(prev, j_count, m);
    case 5: return min_fixed<32>(prev, j_count, m);
    default: break;
  }
  const int k = 1 << k_bits;
  for (int j = 0; j < j_count; ++j) {
    const float* row = prev + j * k;
    float v = row[0];
    for (int p = 1; p < k; ++p) v = row[p] < v ? row[p] : v;
    m[j] = v;
  }
}

inline void state_costs(const float* values, int n_states, int n_values, const float* x, const float* w,
                        const float* add, int j_count, float* cur) {
  {
    const float x0 = x[0], w0 = w[0];
    for (int s = 0; s < n_states; ++s) {
      const float d = x0 - values[s];
      cur[s] = w0 * (d * d);
    }
  }
  for (int v = 1; v < n_values; ++v) {
    const float xv = x[v], wv = w[v];
    const float* val = values + v * n_states;
    for (int s = 0; s < n_states; ++s) {
      const float d = xv - val[s];
      cur[s] = cur[s] + wv * (d * d);
    }
  }
  for (int n = 0; n < n_states; n += j_count) {
    float* c = cur + n;
    for (int j = 0; j < j_count; ++j) c[j] = c[j] + add[j];
  }
}

}  // namespace lowbit::TRELLIS_STEPS_NS
