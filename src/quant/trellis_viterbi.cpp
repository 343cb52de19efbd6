// Viterbi encoder of one tail-biting trellis sequence (trellis_viterbi.h).
#include "quant/trellis_viterbi.h"

#include <cmath>
#include <limits>

#include "quant/trellis_viterbi_steps.h"

namespace lowbit {

Expected<TrellisEncoder> TrellisEncoder::create(const TrellisParams& p, int steps, Isa isa) {
  const int l = p.state_bits, k = p.step_bits;
  // V <= 2: the codebook defines two values per state (formats/trellis_code.h).
  if (k < 1 || k > 8 || l <= k || l > 16 || p.values_per_step < 1 || p.values_per_step > 2) {
    return make_error("trellis encoder: L {}, k {}, V {} outside 1 <= k <= 8, k < L <= 16, 1 <= V <= 2", l, k,
                      p.values_per_step);
  }
  if (steps < 1 || static_cast<int64_t>(steps) * k < l || static_cast<int64_t>(steps) * k > (1 << 20)) {
    return make_error("trellis encoder: {} steps of {} bits hold fewer than L = {} bits (or over 2^20)", steps, k, l);
  }
  TrellisEncoder e;
  e.p_ = p;
  e.steps_ = steps;
  const int n_states = 1 << l, v_count = p.values_per_step;
  e.values_.resize(static_cast<size_t>(n_states) * v_count);
  double sum_sq = 0.0;
  for (int v = 0; v < v_count; ++v) {
    for (int s = 0; s < n_states; ++s) {
      const int value = trellis_state_value(static_cast<uint32_t>(s), v);
      e.values_[static_cast<size_t>(v) * n_states + s] = static_cast<float>(value);
      sum_sq += static_cast<double>(value) * value;
    }
  }
  e.codebook_rms_ = std::sqrt(sum_sq / static_cast<double>(e.values_.size()));
  e.x_.resize(static_cast<size_t>(steps) * v_count);
  e.w_.resize(e.x_.size());
  e.cost_.resize(static_cast<size_t>(steps) * n_states);
  e.start_.resize(static_cast<size_t>(n_states));
  e.min_.resize(static_cast<size_t>(1) << (l - k));
  e.states_.resize(static_cast<size_t>(steps));
  e.best_.resize(e.states_.size());
  e.kernels_ = &trellis_step_kernels(isa);
  return e;
}

float TrellisEncoder::pass(int overlap) {
  const int k = p_.step_bits, n_states = 1 << p_.state_bits, j_count = n_states >> k, v_count = p_.values_per_step;
  const uint32_t j_mask = static_cast<uint32_t>(j_count - 1);
  constexpr float kInf = std::numeric_limits<float>::infinity();
  for (int s = 0; s < n_states; ++s) {
    start_[s] = overlap < 0 || (static_cast<uint32_t>(s) & j_mask) == static_cast<uint32_t>(overlap) ? 0.0f : kInf;
  }
  kernels_->state_costs(values_.data(), n_states, v_count, x_.data(), w_.data(), start_.data(), n_states,
                        cost_.data());
  for (int t = 1; t < steps_; ++t) {
    const float* prev = cost_.data() + static_cast<size_t>(t - 1) * n_states;
    kernels_->min_over_predecessors(prev, k, j_count, min_.data());
    kernels_->state_costs(values_.data(), n_states, v_count, x_.data() + t * v_count, w_.data() + t * v_count,
                          min_.data(), j_count, cost_.data() + static_cast<size_t>(t) * n_states);
  }
  const float* last = cost_.data() + static_cast<size_t>(steps_ - 1) * n_states;
  int best = -1;
  float best_cost = kInf;
  for (int s = 0; s < n_states; ++s) {
    if (overlap >= 0 && (s >> k) != overlap) continue;
    if (last[s] < best_cost) {
      best_cost = last[s];
      best = s;
    }
  }
  if (best < 0) return kInf;
  // Back-trace: the lowest predecessor whose cost is the step's minimum.
  uint32_t s = static_cast<uint32_t>(best);
  states_[steps_ - 1] = s;
  const int pred = 1 << k;
  for (int t = steps_ - 1; t > 0; --t) {
    const float* row = cost_.data() + static_cast<size_t>(t - 1) * n_states + (s & j_mask) * pred;
    float m = row[0];
    for (int p = 1; p < pred; ++p) m = row[p] < m ? row[p] : m;
    int p = 0;
    while (row[p] != m) ++p;
    s = ((s & j_mask) << k) | static_cast<uint32_t>(p);
    states_[t - 1] = s;
  }
  return best_cost;
}

void TrellisEncoder::write_bits(const std::vector<uint32_t>& states, uint8_t* bits) const {
  const int k = p_.step_bits;
  for (int i = 0; i < bytes(); ++i) bits[i] = 0;
  for (int t = 0; t < steps_; ++t) {
    for (int j = 0; j < k; ++j) {
      const int bit = t * k + j;
      bits[bit >> 3] = static_cast<uint8_t>(bits[bit >> 3] | (((states[t] >> j) & 1u) << (bit & 7)));
    }
  }
}

float TrellisEncoder::encode(const float* x, const float* weight, TailBiting tail, uint8_t* bits) {
  const int n = length(), k = p_.step_bits;
  for (int i = 0; i < n; ++i) {
    x_[i] = x[i];
    w_[i] = weight != nullptr ? weight[i] : 1.0f;
  }
  const uint32_t j_mask = (1u << (p_.state_bits - k)) - 1u;
  float cost = pass(-1);
  const uint32_t end_overlap = states_[steps_ - 1] >> k;
  // The unconstrained optimum, when tail-biting, is the optimum of both modes.
  if ((states_[0] & j_mask) == end_overlap) {
    write_bits(states_, bits);
    return cost;
  }
  if (tail == TailBiting::kTwoPass) {
    cost = pass(static_cast<int>(end_overlap));
    write_bits(states_, bits);
    return cost;
  }
  cost = std::numeric_limits<float>::infinity();
  for (uint32_t o = 0; o <= j_mask; ++o) {
    const float c = pass(static_cast<int>(o));
    if (c < cost) {
      cost = c;
      best_ = states_;
    }
  }
  write_bits(best_, bits);
  return cost;
}

}  // namespace lowbit
