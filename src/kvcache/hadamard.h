// The orthonormal Walsh-Hadamard transform, used to rotate keys and values per
// head before quantization (RotateKV, QuaRot): a rotation spreads a few large
// channels over all of them, so a shared scale wastes fewer levels.
//
// H_n = H_2 ⊗ H_{n/2} (Sylvester), H_2 = [[1, 1], [1, -1]], scaled by 1/sqrt(n):
// symmetric and orthogonal, so it is its own inverse (x H H = x). The fast
// transform (FWHT) takes n log2(n) additions: stage s combines pairs (i, i + h),
// h = 2^s, as (a + b, a - b). Sizes are powers of two; other sizes are for a
// later issue (Hadamard matrices of order 12, 20, ... times a power of two).
#pragma once

#include <cstdint>

namespace lowbit {

constexpr bool is_power_of_two(int64_t n) { return n > 0 && (n & (n - 1)) == 0; }

// x: [n] in place, x ← x H_n / sqrt(n); n a power of two.
void fwht(float* x, int n);
// Each of `rows` consecutive vectors of n: x: [rows, n].
void fwht_rows(float* x, int64_t rows, int n);

}  // namespace lowbit
