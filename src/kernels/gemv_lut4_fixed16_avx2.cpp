// lut4/avx2+fixed16 (the kernel is kernels/lut4_fixed16_avx2_impl.h).
#include "kernels/lut4_fixed16_avx2_impl.h"

namespace lowbit {

PackedKernels packed_kernels_lut4_fixed16_avx2() {
  return {gemv<false>, dequantize_rows, Isa::kAvx2, prepare};
}

}  // namespace lowbit
