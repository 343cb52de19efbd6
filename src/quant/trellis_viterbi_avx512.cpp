// The AVX-512 build of the Viterbi step loops (trellis_viterbi_steps.h): the
// same templates, compiled with -mavx512f... and -ffp-contract=off (CMakeLists),
// so no multiply-add is fused and the floats equal the baseline build's.
#include "quant/trellis_viterbi_steps.h"

#define TRELLIS_STEPS_NS trellis_avx512
#include "quant/trellis_viterbi_steps_impl.h"

namespace lowbit {

const TrellisStepKernels& trellis_step_kernels_avx512() {
  static constexpr TrellisStepKernels k{trellis_avx512::min_over_predecessors, trellis_avx512::state_costs,
                                        "avx512"};
  return k;
}

}  // namespace lowbit
