// Row operations built on exp that the forward pass runs once per element of
// every attention score row and every FFN hidden row: softmax and SwiGLU.
// With std::exp (about 20 cycles, scalar) they cost as much as a W8A8 prompt's
// GEMMs (63 M SwiGLU exps and 92 M score exps per 512-token TinyLlama prompt);
// the AVX-512 variants evaluate 16 exps per instruction sequence, the AVX2 ones 8
// (the same exp, lane for lane: exp_rows_avx2.cpp).
//
// The AVX-512 exp: n = round(x·log2 e), r = x − n·ln 2 (ln 2 split in two
// constants, Cody–Waite, so r is exact to ~2⁻³⁵), e^r by its degree-7 Taylor
// polynomial on |r| ≤ ln2/2 (truncation ≤ 5.3e-9 relative), then scalef by 2ⁿ,
// which also gives the right 0 / denormal / inf at the ends of the range. Its
// error against std::exp is at most a few ulp (the test pins 4 ulp = 2.4e-7
// relative over [-103, 88.7], denormal results within 4 of the smallest); inputs below -104 give 0.
#pragma once

#include <cstdint>

#include "kernels/cpu_features.h"

namespace lowbit {

struct ExpRowOps {
  // In place: x[0:n] ← exp(x − max x) / Σ exp(x − max x).
  void (*softmax)(float* x, int64_t n) = nullptr;
  // In place: gate[i] ← silu(gate[i]) · up[i] = gate / (1 + exp(−gate)) · up.
  void (*swiglu)(float* gate, const float* up, int64_t n) = nullptr;
  // out[i] = exp(x[i]) (the kernel's exp alone, for tests and benchmarks).
  void (*exp)(const float* x, float* out, int64_t n) = nullptr;
  const char* name = "";
};

// The reference: std::exp, the softmax sum in double.
ExpRowOps exp_row_ops_generic();
ExpRowOps exp_row_ops_avx2();
ExpRowOps exp_row_ops_avx512();
// AVX-512 from Isa::kAvx512 up, AVX2 at Isa::kAvx2, else the reference.
ExpRowOps exp_row_ops(Isa isa);

}  // namespace lowbit
