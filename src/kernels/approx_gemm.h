// Matrix products whose element products are not FP32 multiplication, summed in
// FP32: L-Mul (kernels/lmul.h) and FP8 E4M3 products (operands rounded to E4M3,
// products exact), for `ppl --arith lmul|fp8` (model/product_arithmetic.h).
//
//   C[i, j] = alpha · Σ_k a(i, k) ∘ b(j, k)      (∘: L-Mul or the exact E4M3 product)
//
// Both operands are given as rows along k (weights W[out, in] and inputs X[n, in];
// keys K[pos, hd]; P[rows, pos] against Vᵀ[hd, pos]), already rounded to the
// product's operand format (approx_round_rows), as FP32 bit patterns.
//
// One summation order at every ISA level, so the kernels equal the scalar
// reference bit for bit: 16 lanes, lane j sums the products of k ≡ j (mod 16)
// in ascending k starting from +0; then lane j adds lane j + 8 (j < 8), then
// j + 4, then j + 2, then lane 0 adds lane 1. (AVX-512: one ZMM accumulator;
// AVX2: two YMM ones for lanes 0-7 and 8-15.) alpha multiplies the finished sum.
//
// The vector kernels take finite operands only: approx_gemm checks each row once
// and computes every dot product of a row holding an infinity or NaN with the
// scalar reference (the same order), so results never depend on the ISA or the
// thread count.
#pragma once

#include <cstdint>
#include <span>

#include "core/thread_pool.h"
#include "kernels/cpu_features.h"

namespace lowbit {

enum class ApproxProduct {
  kLmul,     // L-Mul on m-bit-mantissa operands (lmul.h)
  kFp8E4m3,  // operands rounded to E4M3 (saturating), exact products
};
const char* approx_product_name(ApproxProduct product);  // "lmul", "fp8_e4m3"

struct ApproxArith {
  ApproxProduct product = ApproxProduct::kLmul;
  int lmul_mantissa = 3;  // m of L-Mul's operand format, [1, 23]; unused by kFp8E4m3
};

// x[rows, k] (row stride ldx) rounded to the operand format into out[rows][k] as bits.
void approx_round_rows(const ApproxArith& arith, const float* x, int64_t rows, int64_t k, int64_t ldx, uint32_t* out,
                       ThreadPool* pool = nullptr);

// One dot product Σ_k a[k] ∘ b[k] in the order above. The reference handles every
// operand (lmul.h's special values); the vector kernels finite ones only.
using ApproxDotFn = float (*)(const uint32_t* a, const uint32_t* b, int64_t k, int lmul_mantissa);
float lmul_dot_reference(const uint32_t* a, const uint32_t* b, int64_t k, int lmul_mantissa);
float fp8_dot_reference(const uint32_t* a, const uint32_t* b, int64_t k, int lmul_mantissa);

// The dispatch table: one row per (product, lowest ISA level), the generic rows
// being the references; the vector TUs (approx_gemm_avx2.cpp, _avx512.cpp) export theirs.
struct ApproxDotKernel {
  const char* name = "";  // "lmul/avx512", unique
  ApproxProduct product = ApproxProduct::kLmul;
  Isa isa = Isa::kGeneric;
  ApproxDotFn dot = nullptr;
};
std::span<const ApproxDotKernel> approx_dot_kernels();
// The highest-level row of `product` at or below `isa`.
const ApproxDotKernel& find_approx_dot_kernel(ApproxProduct product, Isa isa);

ApproxDotFn lmul_dot_avx2();
ApproxDotFn lmul_dot_avx512();
ApproxDotFn fp8_dot_avx2();
ApproxDotFn fp8_dot_avx512();

// Rows of an operand: row r at data + r * stride, k elements (bits in the operand format).
struct ApproxRows {
  const uint32_t* data = nullptr;
  int64_t rows = 0;
  int64_t k = 0;
  int64_t stride = 0;
  const uint32_t* row(int64_t r) const { return data + r * stride; }
};

// c[i * ldc + j] = alpha · dot(a row i, b row j) for i < a.rows, j < b.rows (a.k == b.k).
// `pool` (may be null) splits the rows of b.
void approx_gemm(const ApproxArith& arith, const ApproxRows& a, const ApproxRows& b, float* c, int64_t ldc,
                 float alpha, Isa isa, ThreadPool* pool);

}  // namespace lowbit
