// W8A8: INT8 weights per output channel (PackedMatrix kInt8Row) times
// activations quantized per token to INT8 on the fly, with integer dot products.
//
// Activations (quantize_activations_int8, per token t):
//   s_x[t] = max_c |x[t, c]| / 127 (0 for an all-zero token), q = round_half_even(x / s_x)
//   in [-127, 127]; stored as u = q + 128 in [1, 255] because VNNI's vpdpbusd
//   multiplies unsigned by signed bytes.
// Product, exactly (the integer sum cannot overflow: |sum| <= 255 * 127 * K < 2^31 for K < 66,000):
//   acc[t, r] = sum_c u[t, c] w[r, c] - 128 * rowsum[r]  ( = sum_c q[t, c] w[r, c] )
//   y[t, r]   = float(acc) * s_x[t] * (s_w[r] * tensor_scale), FP32 in this order
// so every variant (reference in int64, generic, AVX2, AVX-512 VNNI) returns the same
// bits. Against the FP32 product W x the only difference is the activation
// rounding: |y - W x| <= s_w s_x / 2 * sum_c |w_q[r, c]| (+ FP32 rounding).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/cpu_features.h"
#include "kernels/packed_matrix.h"

namespace lowbit {

struct Int8Activations {
  int64_t tokens = 0;
  int64_t cols_padded = 0;
  std::vector<uint8_t> u8;   // [tokens][cols_padded] q + 128; padding columns hold 128 (q = 0)
  std::vector<float> scale;  // [tokens] s_x
};

// How a token's activation scale is chosen (shared by the W8A8 / W4A8 / W4A4
// activation quantizers): T = static_threshold when it is > 0 (per-tensor static,
// values beyond +-T saturate), else clip * max |x| over the token (or group);
// s = T / qmax. These are the float steps of quant/act_quant's "int8" / "int4"
// token and tensor specs, so the codes equal the simulation's (tested).
struct IntActRule {
  float clip = 1.0f;              // (0, 1]
  float static_threshold = 0.0f;  // > 0: per-tensor static T
};
// s = T / qmax for a block whose max |x| is amax.
inline float int_act_scale(const IntActRule& rule, float amax, float qmax) {
  const float t = rule.static_threshold > 0.0f ? rule.static_threshold : rule.clip * amax;
  return t / qmax;
}

// x: [tokens, cols] -> a, padded to cols_padded (a multiple of 32). The reference.
// A token with a non-finite value gets a NaN scale (NaN outputs, as the simulation's).
void quantize_activations_int8(const float* x, int64_t tokens, int64_t cols, int64_t cols_padded, Int8Activations& a,
                               const IntActRule& rule = {});
// Token range [t0, t1) under `rule` (portable); rule {} is quantize_rows_int8_generic.
void quantize_rows_int8_rule(const float* x, int64_t cols, int64_t t0, int64_t t1, const IntActRule& rule,
                             Int8Activations& a);

// The same in pieces, for threads: size a for [tokens][cols_padded] (all q = 0,
// scales 0), then quantize disjoint token ranges [t0, t1) of x [tokens, cols]
// into it. Every variant gives quantize_activations_int8's bits (the AVX-512 one
// divides and rounds half to even in 16 lanes: the same IEEE operations).
void reserve_int8_activations(int64_t tokens, int64_t cols_padded, Int8Activations& a);
using QuantizeRowsFn = void (*)(const float* x, int64_t cols, int64_t t0, int64_t t1, Int8Activations& a);
void quantize_rows_int8_generic(const float* x, int64_t cols, int64_t t0, int64_t t1, Int8Activations& a);
void quantize_rows_int8_avx512(const float* x, int64_t cols, int64_t t0, int64_t t1, Int8Activations& a);
void quantize_rows_int8_avx2(const float* x, int64_t cols, int64_t t0, int64_t t1, Int8Activations& a);
void quantize_rows_int8_neon(const float* x, int64_t cols, int64_t t0, int64_t t1, Int8Activations& a);  // aarch64

// rowsum[r] = sum_c w[r, c] of a kInt8Row matrix.
std::vector<int32_t> int8_row_sums(const PackedMatrix& w);

struct W8A8Kernels {
  // y[t * ldy + (r - r0)] for every token t and r in [r0, r1).
  void (*gemm)(const PackedMatrix& w, const std::vector<int32_t>& rowsum, const Int8Activations& a, int64_t r0,
               int64_t r1, float* y, int64_t ldy) = nullptr;
  Isa isa = Isa::kGeneric;  // named, and chosen per level, in kernels/kernel_table.h
};

// The exact reference (int64 sums).
void w8a8_reference(const PackedMatrix& w, const std::vector<int32_t>& rowsum, const Int8Activations& a, int64_t r0,
                    int64_t r1, float* y, int64_t ldy);

W8A8Kernels w8a8_kernels_generic();
W8A8Kernels w8a8_kernels_avx2();
W8A8Kernels w8a8_kernels_avxvnni();  // needs AVX-VNNI (CpuFeatures::avx_vnni)
W8A8Kernels w8a8_kernels_avx512vnni();
// 64-bit ARM builds only: SDOT on q = u - 128 (needs asimddp), SMMLA on two tokens x two rows (needs i8mm).
W8A8Kernels w8a8_kernels_neon_dotprod();
W8A8Kernels w8a8_kernels_neon_i8mm();

}  // namespace lowbit
