// The read kernel of the bandwidth probe (eval/bandwidth.h): the 64-bit sum of a
// buffer, written so that the loads, not the adds, limit it (AVX-512: four
// 64-byte loads per iteration into independent accumulators; AVX2: four 32-byte
// loads; portable: eight scalar accumulators). All return the same wrapping sum.
#pragma once

#include <cstdint>

#include "kernels/cpu_features.h"

namespace lowbit {

using SumWordsFn = uint64_t (*)(const uint64_t* p, int64_t n);

uint64_t sum_words_generic(const uint64_t* p, int64_t n);
uint64_t sum_words_avx2(const uint64_t* p, int64_t n);
uint64_t sum_words_avx512(const uint64_t* p, int64_t n);
SumWordsFn sum_words_kernel(Isa isa);

}  // namespace lowbit
