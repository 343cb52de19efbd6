// The baseline build of the Viterbi step loops (trellis_viterbi_steps.h) and the dispatch.
#include "quant/trellis_viterbi_steps.h"

#define TRELLIS_STEPS_NS trellis_generic
#include "quant/trellis_viterbi_steps_impl.h"

namespace lowbit {

const TrellisStepKernels& trellis_step_kernels_generic() {
  static constexpr TrellisStepKernels k{trellis_generic::min_over_predecessors, trellis_generic::state_costs,
                                        "generic"};
  return k;
}

const TrellisStepKernels& trellis_step_kernels(Isa isa) {
#ifdef LOWBIT_ARCH_X86
  if (isa >= Isa::kAvx512) return trellis_step_kernels_avx512();
#endif
  return trellis_step_kernels_generic();
}

}  // namespace lowbit
