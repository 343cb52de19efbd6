// W4A4: 4-bit integer weights in groups (PackedMatrix kLut4 with an integer table,
// as W4A8: UINT4 codes with a minimum, int4_g128_asym, or two's-complement INT4)
// times activations quantized on the fly to INT4 in [-7, 7], with exact integer
// dot products.
//
// Activations (quantize_activations_int4), per token t and activation group h of
// `group` columns along K (group 0: one scale per token; a static rule: the same
// s = T / 7 everywhere):
//   s[t, h] = T / 7, T = clip * max |x| over the group (w8a8.h IntActRule),
//   q = round_half_even(x / s) clamped to [-7, 7]
// the float steps of quant/act_quant's "int4" specs, so the codes equal the
// simulation's (tested). Codes are stored as q + 8 in [1, 15], two per byte, in
// kLut4's nibble layout (a 32-column block is 16 bytes: low nibbles columns
// 0..15, high nibbles 16..31); padding columns hold q = 0.
//
// Product. The columns are cut into sub-blocks of B = gcd(weight group, activation
// group) columns (B = the weight group for one scale per token), inside which both
// scales are constant. Per row r, token t, sub-block k (g: its weight group, h: its
// activation group, v: the integer weight value of the code):
//   UINT4: dot_k = sum_{c in k} code_c q_c
//   INT4:  dot_k = sum_{c in k} (code_c ^ 8) q_c - 8 qsum_k   ( = sum v_c q_c )
//   y[t, r] = tensor_scale * sum_k s[t, h] * (s_g * float(dot_k) + m_g * float(qsum_k))
// with qsum_k = sum_{c in k} q_c, m_g = 0 for INT4. |dot_k| <= 15 * 7 * B, exact in
// int32; the float sum runs over k in order in every variant (w4a4_finish), so the
// reference and the AVX2 and VNNI kernels are bit-identical. Against the simulation (FP32
// product of the dequantized weight and the fake-quantized input) only the float
// summation order differs.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/cpu_features.h"
#include "kernels/packed_matrix.h"
#include "kernels/w8a8.h"

namespace lowbit {

struct Int4Activations {
  int64_t tokens = 0;
  int64_t cols_padded = 0;
  int64_t group = 0;           // columns per scale along K (a multiple of 16); 0: one scale per token
  std::vector<uint8_t> codes;  // [tokens][cols_padded / 2] q + 8, kLut4 nibble layout
  std::vector<float> scale;    // [tokens][n_groups()]

  int64_t n_groups() const { return group > 0 ? (cols_padded + group - 1) / group : 1; }
  // q of token t, column c (the reference decode).
  int32_t q(int64_t t, int64_t c) const;
};

// x: [tokens, cols] -> a, padded to cols_padded (a multiple of 32). group: 0 (per
// token or static) or a multiple of 16. A group with a non-finite value gets a NaN
// scale (its outputs are NaN, as the simulation's).
void quantize_activations_int4(const float* x, int64_t tokens, int64_t cols, int64_t cols_padded, int64_t group,
                               const IntActRule& rule, Int4Activations& a);

// Whether w (integer kLut4, w4a8_supported) and activations grouped by `act_group`
// (0: per token) have a W4A4 kernel: every sub-block is a multiple of 16 columns.
bool w4a4_supported(const PackedMatrix& w, int64_t act_group);
// B: columns per sub-block (see above).
int64_t w4a4_block(const PackedMatrix& w, const Int4Activations& a);
// qsum[t][k] = sum of q over sub-block k of token t, [tokens][ceil(cols_padded / B)].
std::vector<int32_t> w4a4_block_sums(const PackedMatrix& w, const Int4Activations& a);

// y[t * ldy + (r - r0)] for every token t and r in [r0, r1).
using W4A4Fn = void (*)(const PackedMatrix& w, const Int4Activations& a, const std::vector<int32_t>& qsum, int64_t r0,
                        int64_t r1, float* y, int64_t ldy);

// The exact reference (int64 dots, one column at a time).
void w4a4_reference(const PackedMatrix& w, const Int4Activations& a, const std::vector<int32_t>& qsum, int64_t r0,
                    int64_t r1, float* y, int64_t ldy);
// AVX2: register tiles of up to 2 rows x 4 tokens, 32 columns per step (vpmaddubsw + vpmaddwd).
void w4a4_avx2(const PackedMatrix& w, const Int4Activations& a, const std::vector<int32_t>& qsum, int64_t r0,
               int64_t r1, float* y, int64_t ldy);
// AVX-512 VNNI: register tiles of up to 4 rows x 4 tokens, 64 columns per step.
void w4a4_avx512vnni(const PackedMatrix& w, const Int4Activations& a, const std::vector<int32_t>& qsum, int64_t r0,
                     int64_t r1, float* y, int64_t ldy);
// y of one (token, row) from its exact sub-block dots [n_blocks] (shared by every
// variant so the float steps are the same instructions).
float w4a4_finish(const PackedMatrix& w, const Int4Activations& a, const std::vector<int32_t>& qsum, int64_t t,
                  int64_t r, const int32_t* dots);

}  // namespace lowbit
