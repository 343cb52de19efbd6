#include "kernels/stream_read.h"

namespace lowbit {

uint64_t sum_words_generic(const uint64_t* p, int64_t n) {
  uint64_t acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) acc[j] += p[i + j];
  }
  for (; i < n; ++i) acc[0] += p[i];
  uint64_t s = 0;
  for (uint64_t v : acc) s += v;
  return s;
}

SumWordsFn sum_words_kernel(Isa isa) {
#ifdef LOWBIT_ARCH_X86
  if (isa >= Isa::kAvx512) return sum_words_avx512;
  if (isa >= Isa::kAvx2) return sum_words_avx2;
#endif
  return sum_words_generic;
}

}  // namespace lowbit
