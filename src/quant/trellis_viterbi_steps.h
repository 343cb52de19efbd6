// The two loops of one Viterbi step (quant/trellis_viterbi.h), compiled once per
// ISA (trellis_viterbi_steps.cpp: baseline; trellis_viterbi_avx512.cpp: AVX-512,
// both without FMA contraction) from the templates of trellis_viterbi_steps_impl.h.
// Every variant does the same float operations in the same order, so the costs
// and hence the chosen bits are identical at every ISA level.
#pragma once

#include "kernels/cpu_features.h"

namespace lowbit {

struct TrellisStepKernels {
  // m[j] = min_{p < K} prev[j·K + p], j < J.
  void (*min_over_predecessors)(const float* prev, int k_bits, int j_count, float* m);
  // cur[s] = Σ_{v < V} w[v] · (x[v] − values[v · S + s])² + add[s mod J], s < S = K · J
  // (add: the m of the step, or the start costs when J == S).
  void (*state_costs)(const float* values, int n_states, int n_values, const float* x, const float* w,
                      const float* add, int j_count, float* cur);
  const char* name;
};

const TrellisStepKernels& trellis_step_kernels_generic();
const TrellisStepKernels& trellis_step_kernels_avx512();
// The variant of isa: AVX-512 from Isa::kAvx512 up, else the baseline build.
const TrellisStepKernels& trellis_step_kernels(Isa isa);

}  // namespace lowbit
