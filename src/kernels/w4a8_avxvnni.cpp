// w4a8/avxvnni: kernels/w4a8_avx2_impl.h, w4a8_kernel<true> (VEX vpdpbusd; compiled with -mavxvnni).
#include "kernels/w4a8_avx2_impl.h"

namespace lowbit {

void w4a8_avxvnni(const PackedMatrix& w, const Int8Activations& a, const std::vector<int32_t>& qsum, int64_t r0,
                  int64_t r1, float* y, int64_t ldy) {
  w4a8_kernel<true>(w, a, qsum, r0, r1, y, ldy);
}

}  // namespace lowbit
