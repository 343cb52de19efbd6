// lut4/avx512vnni: the fixed-point kLut4 GEMV (lut4_vnni_kernels.h) with the
// nibbles split by shift and mask, for VNNI CPUs without GFNI (Cascade Lake).
#include "kernels/lut4_vnni_kernels.h"

namespace lowbit {

PackedKernels packed_kernels_lut4_avx512vnni() {
  using K = Lut4VnniKernels<false>;
  return {K::gemv, K::dequantize_rows, Isa::kAvx512Vnni, K::prepare};
}

}  // namespace lowbit
