// BF16 products with FP32 sums, for the calibration forward pass (the BF16
// calibration arithmetic of pipeline/calibration.h): the linears, attention's two
// products and the Hessian XᵀX of GPTQ's statistics pass.
//
//   C[m, n] (+)= Σ_k bf16(A[m, k]) · bf16(B[n, k])          (FP32 sums, k ascending)
//
// bf16(x) rounds to nearest even and flushes subnormal inputs to zero, as
// VCVTNE2PS2BF16 does (NaN stays NaN; infinities stay). A BF16 times a BF16 is exact
// in FP32 (8 + 8 significant bits), so the only rounding besides the operands'
// is the FP32 sum's: |C - Σ_k A·B| ≤ Σ_k |bf16(a)bf16(b) - ab| + γ_K Σ_k |bf16(a)bf16(b)|,
// γ_K = K·2^-24, with |bf16(x) - x| ≤ 2^-9 |x|.
//
// Why: two Zen 4 cores do 212 GFLOP/s each in VDPBF16PS against 107 in FP32 FMA
// (measured, docs/RESULTS.md), and GPTQ's calibration forward is arithmetic-bound.
//
// Storage. Operands are kept as pairs along k: one uint32 holds elements 2p (low
// half) and 2p + 1 (high half), an odd K padded with a zero.
//   A rows:   row r, pair p at a[r * row_stride + p * pair_stride].
//   B panels: columns in panels of 32; panel j is [pairs][32] uint32 (column 32j + c
//             at [p * 32 + c]), columns past n zero.
// A panel set read as A rows (row r in panel r/32 at offset r%32, pair stride 32)
// is how XᵀX takes its left operand from the panels of X without a second copy.
#pragma once

#include <cstdint>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu_features.h"

namespace lowbit {

inline constexpr int kBf16PanelCols = 32;  // columns per B panel (two ZMM registers)
inline constexpr int kBf16MicroRows = 8;   // rows of A per micro-kernel call

// Round to nearest even, subnormal inputs to zero; NaN stays NaN (quiet).
uint16_t bf16_from_float(float x);
float float_from_bf16(uint16_t h);

// B operand as panels.
struct Bf16Panels {
  int64_t n = 0;      // columns
  int64_t pairs = 0;  // ceil(K / 2)
  std::vector<uint32_t> data;  // [ceil(n / 32)][pairs][32]
  int64_t n_panels() const { return (n + kBf16PanelCols - 1) / kBf16PanelCols; }
  const uint32_t* panel(int64_t j) const { return data.data() + j * pairs * kBf16PanelCols; }
};

// B[n, k] given row by row (b[i * ldb + k]: weights W[out, in], keys K[pos, hd]).
void pack_bf16_panels_from_rows(const float* b, int64_t n, int64_t k, int64_t ldb, Bf16Panels& out);
// B given column by column: b[k * ldb + i] is B[i, k] (values V[pos, hd] for P·V, X[tokens, in] for XᵀX).
// `isa` picks the rounding loop (the same bits at every level); `pool` splits the pairs.
void pack_bf16_panels_from_columns(const float* b, int64_t k, int64_t n, int64_t ldb, Bf16Panels& out, Isa isa,
                                   ThreadPool* pool = nullptr);

// A operand as rows of pairs.
struct Bf16Rows {
  int64_t rows = 0;
  int64_t pairs = 0;
  int64_t row_stride = 0;   // uint32 between rows r and r + 1 (within a group)
  int64_t pair_stride = 1;  // uint32 between pairs p and p + 1
  int64_t group = 0;        // rows per group (0: one group); rows r, r + 1 in one group are row_stride apart
  int64_t group_stride = 0; // uint32 between groups
  const uint32_t* data = nullptr;
  const uint32_t* row(int64_t r) const {
    return group == 0 ? data + r * row_stride : data + (r / group) * group_stride + (r % group) * row_stride;
  }
};
// x[rows, k] (row stride ldx) rounded into out: [rows][ceil(k/2)] uint32, returned as rows.
Bf16Rows round_rows_bf16(const float* x, int64_t rows, int64_t k, int64_t ldx, std::vector<uint32_t>& out, Isa isa);
// The same into out[rows][ceil(k/2)] given by the caller; `pool` splits the rows.
void round_rows_bf16_to(const float* x, int64_t rows, int64_t k, int64_t ldx, uint32_t* out, Isa isa,
                        ThreadPool* pool = nullptr);
// The panels of X read as A = Xᵀ: row i is column i of X.
Bf16Rows panels_as_rows(const Bf16Panels& panels);

// Which part of C a product computes.
struct Bf16GemmRange {
  int64_t cols = -1;          // columns [0, cols) of B (-1: all n)
  bool upper_only = false;    // XᵀX: skip the panels entirely left of the diagonal (col < row)
  bool accumulate = false;    // C += (else C =)
  float alpha = 1.0f;         // C (+)= alpha · Σ, alpha applied to the finished FP32 sum
};

// C[m, n] (ldc) over a.rows × range.cols, summing the first a.pairs pairs (a.pairs ≤
// b.pairs: attention's P·V stops at the last position a block of queries sees). Threads split the
// panels; every element is one sum in k order whatever the split, so the bits do not
// depend on the thread count. `isa` chooses the micro-kernel (AVX512_BF16 at
// Isa::kAvx512Bf16 and above, the scalar reference below).
void gemm_bf16(const Bf16Rows& a, const Bf16Panels& b, float* c, int64_t ldc, const Bf16GemmRange& range, Isa isa,
               ThreadPool* pool);

// The micro-kernel: c[r, c] (+)= alpha · Σ_p a(r, p) · panel(p, c) for r < rows ≤ 8,
// c < cols ≤ 32, a(r, p) at a[r * a_row_stride + p * a_pair_stride]. Per pair the sum
// takes the high product, then the low one (VDPBF16PS's order), subnormal sums flushed
// to zero as that instruction does.
using Bf16MicroKernel = void (*)(const uint32_t* a, int64_t a_row_stride, int64_t a_pair_stride,
                                 const uint32_t* panel, int64_t pairs, float* c, int64_t ldc, int rows, int cols,
                                 float alpha, bool accumulate);
void bf16_micro_kernel_reference(const uint32_t* a, int64_t a_row_stride, int64_t a_pair_stride,
                                 const uint32_t* panel, int64_t pairs, float* c, int64_t ldc, int rows, int cols,
                                 float alpha, bool accumulate);
// The AVX512_BF16 kernel (VDPBF16PS); null in builds without it.
Bf16MicroKernel bf16_micro_kernel_avx512bf16();
// Rounds n floats to BF16 pairs (n even) with VCVTNE2PS2BF16; null without it.
using Bf16RoundFn = void (*)(const float* x, int64_t n, uint32_t* out);
Bf16RoundFn bf16_round_avx512bf16();
// Pair p of columns [0, n) (n a multiple of 16) of rows lo = 2p and hi = 2p + 1 (null:
// zeros) into panels laid out as Bf16Panels::data with `pairs` pairs; null without it.
using Bf16InterleaveFn = void (*)(const float* lo, const float* hi, int64_t n, int64_t pairs, int64_t p,
                                  uint32_t* panels);
Bf16InterleaveFn bf16_interleave_avx512bf16();

// The kernel `isa` runs: the AVX512_BF16 one at Isa::kAvx512Bf16 and above, else the reference.
Bf16MicroKernel bf16_micro_kernel_for(Isa isa);

}  // namespace lowbit
