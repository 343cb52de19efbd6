// lut4/avxvnni+fixed16 (the kernel is kernels/lut4_fixed16_avx2_impl.h), compiled
// with -mavxvnni: the AVX2 kernel with its byte products on vpdpbusd (VEX).
#include "kernels/lut4_fixed16_avx2_impl.h"

namespace lowbit {

PackedKernels packed_kernels_lut4_fixed16_avxvnni() {
  return {gemv<true>, dequantize_rows, Isa::kAvxVnni, prepare};
}

}  // namespace lowbit
