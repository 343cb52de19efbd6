// W8A8 with AVX-VNNI: kernels/w8a8_avx2_impl.h, gemm<true> (compiled with -mavxvnni).
#include "kernels/w8a8_avx2_impl.h"

namespace lowbit {

W8A8Kernels w8a8_kernels_avxvnni() { return {gemm<true>, Isa::kAvxVnni}; }

}  // namespace lowbit
