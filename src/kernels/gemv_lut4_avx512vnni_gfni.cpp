// lut4/avx512vnni+gfni: the fixed-point kLut4 GEMV (lut4_vnni_kernels.h) with the
// high nibbles split off by one GFNI affine instead of a shift and a mask: TinyLlama
// W4 decode 37.8 -> 38.4 tok/s (medians of 4 alternating pairs, +2%). Compiled
// with -mgfni; chosen only where CPUID reports GFNI (packed_matrix.cpp).
#include "kernels/lut4_vnni_kernels.h"

namespace lowbit {

PackedKernels packed_kernels_lut4_avx512vnni_gfni() {
  using K = Lut4VnniKernels<true>;
  return {K::gemv, K::dequantize_rows, Isa::kAvx512Vnni, K::prepare};
}

}  // namespace lowbit
