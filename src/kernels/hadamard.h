// Orthonormal Hadamard transforms of order n = 2^k · m, the rotations of QuaRot
// (Ashkboos et al. 2024), RotateKV and HALO: multiplying by a Hadamard matrix
// spreads a few large channels over all of them, so a shared quantization scale
// wastes fewer levels, and it costs O(n log n) instead of O(n²).
//
// A Hadamard matrix H of order n has entries ±1 and H·Hᵀ = n·I; H/sqrt(n) is
// orthogonal. Orders used here:
//   - powers of two (Sylvester): H_{2n} = H_2 ⊗ H_n, H_2 = [[1, 1], [1, -1]],
//     symmetric, so H/sqrt(n) is its own inverse;
//   - base orders m ∈ {12, 20, 28, 36, 44, 52, 60} (each 4 · odd), built by
//     Paley's constructions (Paley 1933) from the quadratic character χ of GF(q):
//       Paley I,  q ≡ 3 (mod 4), order q + 1:    H = I + [[0, 1ᵀ], [−1, J]]
//       Paley II, q ≡ 1 (mod 4), order 2(q + 1): C = [[0, 1ᵀ], [1, J]],
//                 H = C ⊗ [[1, 1], [1, −1]] + I ⊗ [[1, −1], [−1, −1]]
//     with the Jacobsthal matrix J_ab = χ(x_b − x_a):
//       12 = I(11), 20 = I(19), 28 = II(13), 36 = II(17), 44 = I(43),
//       52 = II(25) (GF(25) = GF(5)[t]/(t² − 2)), 60 = I(59);
//     these are not symmetric in general: the inverse of x ↦ x·H/sqrt(n) is
//     x ↦ x·Hᵀ/sqrt(n) (hadamard_rows_transpose);
//   - n = 2^k · m: H_n = H_{2^k} ⊗ H_m (so 40 = 2·20, 576 = 16·36, 1536 = 128·12).
//
// Convention: every transform acts on row vectors, x ← x · H_n / sqrt(n), on
// x: [rows, n] in place. Index i = a·m + b (a < 2^k, b < m); with X = x viewed as
// [2^k, m], x·(A ⊗ B) = Aᵀ·X·B: a fast Walsh-Hadamard transform (FWHT) along a
// (stride m) and one dense m×m product per a. Cost per row: n·log2(2^k) additions
// + n·m multiply-adds.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kernels/cpu_features.h"

namespace lowbit {

constexpr bool is_power_of_two(int64_t n) { return n > 0 && (n & (n - 1)) == 0; }

// n = pow2 · base, base one of hadamard_base_orders().
struct HadamardOrder {
  int64_t pow2 = 1;
  int base = 1;
};

// {1, 12, 20, 28, 36, 44, 52, 60}: the base orders m this module knows.
const std::vector<int>& hadamard_base_orders();

// The factorisation n = 2^k · m, or nullopt when no Hadamard matrix of order n is
// known here (then use a random orthogonal matrix: orthogonal_rotation.h).
std::optional<HadamardOrder> hadamard_order(int64_t n);
inline bool hadamard_supported(int64_t n) { return hadamard_order(n).has_value(); }
// "576 = 16·36", "64 = 64·1", or "172: no known Hadamard matrix" for messages.
std::string describe_hadamard_order(int64_t n);

// The ±1 Hadamard matrix of base order m, [m, m] row-major; empty when m is not a
// base order. Built by Paley's construction (above); H·Hᵀ = m·I.
std::vector<int8_t> hadamard_base_matrix(int m);

// Dense reference: H_n / sqrt(n), [n, n] row-major in double, built as the
// Kronecker product H_{2^k} ⊗ H_m; empty when n is not supported. O(n²) memory:
// for tests and small offline folds.
std::vector<double> hadamard_matrix(int64_t n);

// x: [rows, n] in place, x ← x · H_n / sqrt(n). n must be supported
// (hadamard_supported). Reentrant: no shared state, nothing allocated on the heap.
void hadamard_rows(float* x, int64_t rows, int64_t n);
// x ← x · H_nᵀ / sqrt(n), the inverse of hadamard_rows.
void hadamard_rows_transpose(float* x, int64_t rows, int64_t n);

// Powers of two only (Sylvester, symmetric: its own inverse); the KV cache's
// per-head rotation. x: [n] in place, x ← x H_n / sqrt(n). Same arithmetic as
// hadamard_rows for m = 1.
void fwht(float* x, int n);
// Each of `rows` consecutive vectors of n: x: [rows, n].
void fwht_rows(float* x, int64_t rows, int n);

// The functions above run the row kernel of active_isa() (hadamard_row_kernels.h);
// these run the one of `isa` (tests, benchmarks). Every level gives the same
// floats, bit for bit.
void hadamard_rows_with(Isa isa, float* x, int64_t rows, int64_t n, bool transpose);
void fwht_rows_with(Isa isa, float* x, int64_t rows, int n);

}  // namespace lowbit
