// The row kernel of the Hadamard transforms (hadamard.h), one per ISA level.
//
// A kernel maps one row x: [pow2, m] (m = 1 or a base order ≤ 60) in place to
// x·(H_{pow2} ⊗ B)·scale, b: [m, m] row-major (B or Bᵀ):
//   1. a fast Walsh-Hadamard transform along the power-of-two axis: at stage h
//      the blocks j and j + h (each m contiguous floats) become (u + v, u − v);
//      for i a multiple of 2h the blocks i..i+h−1 are one contiguous span of
//      h·m floats, so a stage is element-wise work on spans;
//   2. per block of m: y_d = Σ_k x_k · b[k, d], k ascending, then y_d · scale.
// The SIMD kernels vectorise over the element (the span index in 1, d in 2) and
// keep every element's operations and their order, each multiply and add
// rounded on its own (their files are compiled with -ffp-contract=off): every
// level gives the same floats as the generic kernel, bit for bit, so rotated
// models and the --deterministic mode do not depend on the ISA level.
#pragma once

#include <cstdint>

#include "kernels/cpu_features.h"

namespace lowbit {

using HadamardRowFn = void (*)(float* x, int64_t pow2, int m, const float* b, float scale);

void hadamard_row_generic(float* x, int64_t pow2, int m, const float* b, float scale);
void hadamard_row_avx2(float* x, int64_t pow2, int m, const float* b, float scale);
void hadamard_row_avx512(float* x, int64_t pow2, int m, const float* b, float scale);

// The kernel for `isa` (the highest level at or below it that has one).
HadamardRowFn hadamard_row_kernel(Isa isa);
// "hadamard/avx512", "hadamard/avx2" or "hadamard/generic".
const char* hadamard_row_kernel_name(Isa isa);

}  // namespace lowbit
