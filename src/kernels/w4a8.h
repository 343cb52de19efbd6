// W4A8: 4-bit integer weights in groups (PackedMatrix kLut4 whose table is the
// integer code itself: UINT4 with a minimum, int4_g128_asym; or two's-complement
// INT4, int4_g128) times activations quantized per token to INT8 on the fly
// (w8a8.h's Int8Activations), with integer dot products per group.
//
// Per row r, token t, group g (v = the integer weight value of the code):
//   UINT4:  dot_g = sum_{c in g} code_c q_c                 (vpdpbusd: codes unsigned, q signed)
//   INT4:   dot_g = sum_{c in g} (code_c ^ 8) q_c - 8 * qsum_g   ( = sum v_c q_c )
//   y[t, r] = tensor_scale * s_x[t] * sum_g (s_g * float(dot_g) + m_g * float(qsum_g))
// where qsum_g = sum_{c in g} q_c and m_g = 0 for INT4. dot_g is exact in int32;
// the float sum runs over the groups in order in every variant, so reference,
// AVX2 and VNNI results are bit-identical.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/packed_matrix.h"
#include "kernels/w8a8.h"

namespace lowbit {

// Whether w's table is the integer code (UINT4) or two's-complement INT4; false otherwise.
bool w4a8_supported(const PackedMatrix& w, bool* signed_codes);

// qsum[t][g] = sum of q over group g of token t, [tokens][n_groups].
std::vector<int32_t> group_activation_sums(const PackedMatrix& w, const Int8Activations& a);
// Tokens [t0, t1) of the same into qsum (sized [tokens][n_groups]), for threads.
// The portable loop, and an AVX-512 one (vpsadbw, 64 columns per instruction)
// with the same integers (kernels/kernel_table.h picks per level).
using GroupSumsFn = void (*)(const PackedMatrix& w, const Int8Activations& a, int64_t t0, int64_t t1,
                             int32_t* qsum);
void group_activation_sums_rows(const PackedMatrix& w, const Int8Activations& a, int64_t t0, int64_t t1,
                                int32_t* qsum);
void group_activation_sums_rows_avx512(const PackedMatrix& w, const Int8Activations& a, int64_t t0, int64_t t1,
                                       int32_t* qsum);

using W4A8Fn = void (*)(const PackedMatrix& w, const Int8Activations& a, const std::vector<int32_t>& qsum, int64_t r0,
                        int64_t r1, float* y, int64_t ldy);

void w4a8_reference(const PackedMatrix& w, const Int8Activations& a, const std::vector<int32_t>& qsum, int64_t r0,
                    int64_t r1, float* y, int64_t ldy);
void w4a8_avx2(const PackedMatrix& w, const Int8Activations& a, const std::vector<int32_t>& qsum, int64_t r0,
               int64_t r1, float* y, int64_t ldy);
void w4a8_avxvnni(const PackedMatrix& w, const Int8Activations& a, const std::vector<int32_t>& qsum, int64_t r0,
                  int64_t r1, float* y, int64_t ldy);  // needs avx_vnni (cpu_features.h)
void w4a8_avx512vnni(const PackedMatrix& w, const Int8Activations& a, const std::vector<int32_t>& qsum, int64_t r0,
                     int64_t r1, float* y, int64_t ldy);
// y of one (token, row) from its exact group dots [n_groups] (shared by every
// variant so the float steps are the same instructions).
float w4a8_finish(const PackedMatrix& w, const Int8Activations& a, const std::vector<int32_t>& qsum, int64_t t,
                  int64_t r, const int32_t* dots);

}  // namespace lowbit
