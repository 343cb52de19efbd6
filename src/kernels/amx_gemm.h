// W8A8 and W4A8 prompt GEMMs on AMX-INT8 tiles (Sapphire Rapids and later),
// bit-identical to w8a8_reference / w4a8_reference.
//
// One tile instruction, TDPBSSD (Intel SDM, "Intel AMX" chapter), multiplies
// signed bytes into int32 without saturation:
//   C[m][n] += sum_{kk < K/4, i < 4} A[m][4 kk + i] * B[kk][4 n + i]
// with C 16 x 16 int32, A 16 x K bytes, B K/4 x 64 bytes, K = 64 (or 32).
// lowbit puts tokens on the rows of A and C, and weight (output) rows on the
// columns of C, so a row of C is 16 consecutive outputs of one token (stored
// straight into y[t, r0 .. r0 + 16)):
//   A: the per-token INT8 activations as signed q = u - 128 (AmxActivations),
//      in whole tiles: [tokens_padded / 16][k_padded / 64][16][64], zero tokens
//      and columns as padding, built once per call and read by every thread.
//      Each tile is 1 KiB in one piece, so a pass streams two sequential runs
//      instead of 32 strided rows (which the hardware prefetchers lose track of).
//   B: 16 weight rows in "VNNI" order, [k_padded / 4][16][4]:
//        B[kk][4 n + i] = W[r + n][4 kk + i]
//      built from the packed layout (kInt8Row bytes, or kLut4 nibbles widened
//      to int8) per block of rows into a per-thread buffer that stays in L2
//      while every token block passes over it. No second copy of the weights
//      is kept, so memory stays the packed size.
// Each pass computes a 32-token x 32-row block with four C tiles (two A and two
// B tiles, each loaded once per K step and used twice). Zero padding (tokens to
// 32, rows to 32, K to 64) multiplies zeros, so the integer sums stay exact;
// padded outputs are not written.
//
// The float steps after the integer sums are those of the references, in the
// same order (W8A8: float(acc) * s_x * (s_w * tensor_scale); W4A8: per group
// s_g * float(dot_g) + m_g * float(qsum_g) summed over the groups in order,
// then times tensor_scale * s_x), with separate multiplies and adds (the AMX
// translation units are compiled without FP contraction).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/packed_matrix.h"
#include "kernels/w8a8.h"

namespace lowbit {

inline constexpr int64_t kAmxTokenBlock = 32;  // tokens per pass: two A tiles of 16
inline constexpr int64_t kAmxRowBlock = 32;    // weight rows per pass: two B tiles of 16
inline constexpr int64_t kAmxK = 64;           // bytes of K in one full tile step

// Activations in the AMX A-tile layout.
struct AmxActivations {
  int64_t tokens = 0;
  int64_t tokens_padded = 0;  // multiple of kAmxTokenBlock
  int64_t k_padded = 0;       // cols_padded rounded up to kAmxK
  // [tokens_padded / 16][k_padded / 64][16][64] q = u - 128, 0 in the padding (not
  // value-initialised first: the rows are written whole, so nothing is cleared twice)
  std::unique_ptr<int8_t[]> q;
  std::vector<float> scale;  // [tokens] s_x

  // The 16 x 64 tile of tokens [t, t + 16) (t a multiple of 16) and columns
  // [k - k % 64, + 64), at column k % 64 of its rows; rows are 64 bytes apart.
  const int8_t* tile(int64_t t, int64_t k) const { return q.get() + t * k_padded + (k / 64) * 1024 + k % 64; }
};

// a (Int8Activations, [tokens][cols_padded]) -> x.
void prepare_amx_activations(const Int8Activations& a, AmxActivations& x);
// The same in pieces, for threads: size x (and zero its padding tokens), then
// fill disjoint token ranges [t0, t1) once those rows of a are quantized.
void reserve_amx_activations(int64_t tokens, int64_t cols_padded, AmxActivations& x);
void amx_activation_rows(const Int8Activations& a, int64_t t0, int64_t t1, AmxActivations& x);

// Whether w4a8_amx runs w: an integer kLut4 layout (w4a8_supported) whose group
// is a multiple of 32 (a group is a whole number of 32- or 64-byte K steps).
bool w4a8_amx_supported(const PackedMatrix& w);

// y[t * ldy + (r - r0)] for every token t and row r in [r0, r1), as w8a8_reference
// (w: kInt8Row). Call only where isa_supported(Isa::kAmx).
void w8a8_amx(const PackedMatrix& w, const AmxActivations& x, int64_t r0, int64_t r1, float* y, int64_t ldy);

// Likewise as w4a8_reference (w: w4a8_amx_supported; qsum from group_activation_sums).
void w4a8_amx(const PackedMatrix& w, const AmxActivations& x, const std::vector<int32_t>& qsum, int64_t r0,
              int64_t r1, float* y, int64_t ldy);

}  // namespace lowbit
