// Batch-invariant FP32 kernels for the deterministic forward pass (`--deterministic`,
// docs/RUNTIME.md): every output element is computed with one summation order that
// depends only on the operands' length, never on the batch size, the thread count,
// the tile a kernel happens to use or the ISA level. "Give Me FP32 or Give Me Death"
// (Yuan et al. 2025) traces run-to-run drift of LLM evaluations to reductions whose
// order changes with these settings; here no reduction is split or reordered.
//
// The dot order (fixed_order_dot): 16 lanes, lane j sums the products a[k]·b[k] of
// the indices k ≡ j (mod 16) in increasing k, each product rounded to FP32 and then
// added (never fused into an FMA: these files are compiled with -ffp-contract=off
// and the SIMD variants issue separate multiply and add instructions); a short last
// block is padded with +0 products. The 16 lane sums are then added as a fixed tree:
// s8[j] = l[j] + l[j+8], s4[j] = s8[j] + s8[j+4], s2[j] = s4[j] + s4[j+2], s2[0] + s2[1].
// The AVX2 (two YMM) and AVX-512 (one ZMM) variants compute exactly these roundings,
// lane for lane, so every ISA gives the same bits (tests/test_deterministic.cpp).
#pragma once

#include <cstdint>

#include "kernels/cpu_features.h"

namespace lowbit {

inline constexpr int kFixedOrderLanes = 16;

// The reference: the order above, scalar.
float fixed_order_dot(const float* a, const float* b, int64_t n);

// y[t * y_stride + r] = fixed_order_dot(x + t * in, w + r * in, in) for rows r in
// [r0, r1) of w [rows, in] and tokens t in [0, n_tokens) of x [n_tokens, in].
using FixedOrderRowsFn = void (*)(const float* w, int64_t in, int64_t r0, int64_t r1, const float* x,
                                  int64_t n_tokens, float* y, int64_t y_stride);

struct FixedOrderKernels {
  FixedOrderRowsFn rows = nullptr;
  const char* name = "";
};

FixedOrderKernels fixed_order_kernels_generic();
FixedOrderKernels fixed_order_kernels_avx2();
FixedOrderKernels fixed_order_kernels_avx512();
// AVX-512 from Isa::kAvx512 up, AVX2 at Isa::kAvx2, else the reference (the same bits).
FixedOrderKernels fixed_order_kernels(Isa isa);

// e^x in double from IEEE double operations only (no libm, whose exp a CPU may
// dispatch to an FMA variant): n = nearbyint(x·log2 e), r = (x − n·ln2_hi) − n·ln2_lo
// (Cody–Waite; ln2_hi has 32 significant bits, so n·ln2_hi is exact for |n| < 2²¹),
// e^r by its Taylor polynomial of degree 13 on |r| ≤ 0.347 (truncation
// 0.347¹⁴/14! < 5e-18 relative), scaled by 2ⁿ. Relative error a few 1e-16: its
// FP32 rounding is within 1 ulp of the correctly rounded e^x. 0 below −745, +inf above 709.8.
double fixed_order_exp(double x);

// In place: x[0:n] ← e^(x − max x) / Σ e^(x − max x): the maximum and the sum (in
// double) taken in increasing index order, each e^· rounded to FP32 before the sum.
void fixed_order_softmax(float* x, int64_t n);

// In place: gate[i] ← silu(gate[i]) · up[i], silu(g) = g / (1 + e^−g), in double,
// rounded once to FP32.
void fixed_order_swiglu(float* gate, const float* up, int64_t n);

}  // namespace lowbit
