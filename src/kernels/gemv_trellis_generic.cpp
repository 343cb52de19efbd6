// kTrellis kernels in portable C++ (trellis_kernels.h): the FP32 GEMV on x as
// given, the scalar state walk of trellis_sequence_values, 16 lanes per group.
#include "kernels/trellis_kernels.h"

namespace lowbit {

PackedKernels packed_kernels_trellis_generic() {
  return {trellis_gemv_fp32, trellis_dequantize_rows, Isa::kGeneric};
}

}  // namespace lowbit
