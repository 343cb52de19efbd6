// llama.cpp's activation types: the values its CPU backend multiplies a weight by.
//
// Before a matrix product y = x·Wᵀ with a weight W of GGUF type T, ggml's CPU
// backend converts each row of the activations x [n_tokens, in] to T's "vec_dot
// type" (io/ggml_types.h GgmlTypeTraits::act_type) and multiplies in that type,
// so the product is x̂·Ŵᵀ, x̂ the activations as that type holds them and Ŵ the
// dequantized weight (up to FP32 summation order; Q8_1 below is the exception).
// This file computes x̂, one row at a time, blocks along the row (facts read from
// ggml-cpu/arch/x86/quants.c and ggml-quants.c; the AVX/AVX2 build llama.cpp
// makes on x86):
//   F32   x̂ = x
//   F16   x̂ = fp16(x), round to nearest even (F16C)
//   BF16  x̂ = bf16(x), round to nearest even
//   Q8_0  blocks of 32: amax = max |x|, d = amax / 127 (FP32), codes
//         q = RNE(x · (127 / amax)) (0 when amax = 0) as int8, d stored as FP16:
//         x̂ = fp16(d) · q. The codes come from the FP32 quotient, not from the
//         stored d. (The scalar reference and the ARM build take 1 / d for
//         127 / amax and roundf / round-to-nearest-even; the quotients differ by
//         at most an ulp, which moves a code only when x · 127 / amax lies within
//         an ulp of a half-integer.)
//   Q8_1  Q8_0's codes and d, plus s = fp16(d · Σq) per block (d in FP32, the
//         product rounded to FP32 then FP16): x̂ as Q8_0. The Q4_1 / Q5_1 dot
//         products take a weight block's min term m·Σx̂ as m·s, which rounds d·Σq
//         to FP16 where x̂ rounds d: the product is x̂·Ŵᵀ + Σ_b m_b·e_b with the
//         block residual e = s − fp16(d)·Σq (ggml_q8_1_sum_residuals; x̂ alone
//         cannot express it).
//   Q8_K  blocks of 256: m = the element of largest |x| (the first on ties),
//         iscale = -127 / m, q = min(127, RNE(iscale · x)), d = 1 / iscale in
//         FP32 (not rounded to FP16): x̂ = d · q. The sign of m cancels in d · q
//         (RNE is odd-symmetric), so the repacked Q4_K path, which picks the
//         sign differently, gives the same x̂.
// Bits per element (scales and sums included): F16/BF16 16, Q8_0 8.5 (34 bytes
// per 32), Q8_1 9 (36 bytes per 32), Q8_K 9.125 (292 bytes per 256: FP32 d,
// 256 codes, 16 int16 sums of 16).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "io/ggml_types.h"

namespace lowbit {

struct GgmlActType {
  GgmlType type;
  const char* name;         // activation format name (quant/act_quant.h): "ggml_q8_0"
  int64_t block_size;       // elements per scale block along a row; 1 for F32/F16/BF16
  double bits_per_element;  // scales and block sums included
};

// The table: F32, F16, BF16, Q8_0, Q8_1, Q8_K.
const std::vector<GgmlActType>& ggml_act_types();
// nullptr when `type` is not an activation type llama.cpp converts to.
const GgmlActType* find_ggml_act_type(GgmlType type);
const GgmlActType* find_ggml_act_type(std::string_view name);

// One Q8_0 (or Q8_1) block: x [32] -> the FP16 code of d and the codes q [32].
void ggml_q8_0_encode(const float* x, uint16_t* d_fp16, int8_t* q);
// One Q8_1 block: Q8_0's d and codes, and the FP16 code of s = d · Σq.
void ggml_q8_1_encode(const float* x, uint16_t* d_fp16, uint16_t* s_fp16, int8_t* q);
// One Q8_K block: x [256] -> d (FP32) and the codes q [256].
void ggml_q8_K_encode(const float* x, float* d, int8_t* q);

// x [n] -> e [n / 32]: per Q8_1 block, e = s − fp16(d)·Σq (exact in FP32:
// fp16(d)·Σq needs at most 23 significant bits and s lies within 2^-11 of it).
// n must be a multiple of 32; non-finite values are an error.
Status ggml_q8_1_sum_residuals(const float* x, int64_t n, float* e);

// x [n] -> out [n] (may alias x): the values llama.cpp multiplies after
// converting the row x to `type`. n must be a multiple of the block size;
// non-finite values are an error.
Status ggml_round_activations(const GgmlActType& type, const float* x, int64_t n, float* out);

}  // namespace lowbit
