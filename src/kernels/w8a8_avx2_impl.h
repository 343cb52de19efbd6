// The W8A8 GEMM on 256-bit registers, shared by two translation units compiled for
// their ISA (internal linkage: each holds its own copy): gemm<false>, w8a8/avx2
// (w8a8_avx2.cpp), and gemm<true>, w8a8/avxvnni (w8a8_avxvnni.cpp).
//
// AVX2 (w8a8.h). vpmaddubsw multiplies unsigned by signed bytes and
// adds adjacent pairs into int16 with saturation, so it is used on
//   |w| (unsigned, <= 128)  x  q * sign(w) (signed, |q| <= 127)
// (vpabsb, vpsignb): each product is w * q and each pair sum is at most
// 2 * 128 * 127 = 32512 < 2^15 in magnitude, so nothing saturates and the sum is
// exact; vpmaddwd by ones widens the pairs into 8 int32 lanes. The activations
// are read as u = q + 128 and flipped back to q with xor 0x80, so no -128 * rowsum
// correction is needed: acc = sum_c q w, the same integer as the reference's,
// and the float steps are the reference's (float(acc) * s_x * (s_w * tensor_scale)).
// Requires q in [-127, 127] (quantize_activations_int8 clamps there; q = -128
// could saturate a pair).
//
// A register tile of R <= 4 rows x T <= 2 tokens (8 accumulators: 16 YMM
// registers hold them, the loads and the constants) reuses each weight load T
// times and each activation load R times. cols_padded is a multiple of 32: no tail.
// Tried and not kept (one thread, in-process A/B on Zen 4 under load, no gain
// outside the noise): columns in blocks of 1024 (0.90-1.06x), and a |w| panel
// made once per 4 rows instead of the vpabsb per step (0.65x at 1 and 64 tokens).
//
// AVX-VNNI (level avxvnni, cpu_features.h): the VEX vpdpbusd
// multiplies 32 unsigned activation bytes (q + 128) by 32 signed weight bytes and
// adds groups of four products into 8 int32 lanes: one instruction per 32
// columns where the AVX2 kernel (w8a8_avx2.cpp) needs vpabsb, vpsignb, vpmaddubsw,
// vpmaddwd and an add. A register tile of R <= 4 rows x T <= 2 tokens (8
// accumulators) reuses each weight load T times and each activation load R times;
// cols_padded is a multiple of 32, so there is no tail. The int32 lanes may wrap
// on the way; their total minus 128 * rowsum is the exact integer of the
// reference wherever it fits in int32 (|sum q w| <= cols * 127 * 128), as in the
// AVX-512 VNNI kernel; then the scales in the reference's order: bit-identical.
#pragma once

#include <immintrin.h>

#include <algorithm>

#include "kernels/avx2_lanes.h"
#include "kernels/w8a8.h"

namespace lowbit {
namespace {

template <bool kVnni, int R, int T>
void tile(const PackedMatrix& w, const std::vector<int32_t>& rowsum, const Int8Activations& a, int64_t r, int64_t t,
          int64_t r0, float* y, int64_t ldy) {
  const int64_t k = w.cols_padded, rb = w.row_bytes();
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80)), ones = _mm256_set1_epi16(1);
  const uint8_t* wp[R];
  const uint8_t* xp[T];
  for (int i = 0; i < R; ++i) wp[i] = w.codes.data() + (r + i) * rb;
  for (int j = 0; j < T; ++j) xp[j] = a.u8.data() + (t + j) * a.cols_padded;
  __m256i acc[R][T];
  for (int i = 0; i < R; ++i) {
    for (int j = 0; j < T; ++j) acc[i][j] = _mm256_setzero_si256();
  }
  for (int64_t c = 0; c < k; c += 32) {
    __m256i x[T];  // AVX-VNNI: u = q + 128 as stored; AVX2: q
    for (int j = 0; j < T; ++j) {
      x[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xp[j] + c));
      if constexpr (!kVnni) x[j] = _mm256_xor_si256(x[j], flip);
    }
    for (int i = 0; i < R; ++i) {
      const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp[i] + c));
      if constexpr (kVnni) {
        for (int j = 0; j < T; ++j) acc[i][j] = _mm256_dpbusd_avx_epi32(acc[i][j], x[j], wv);
      } else {
        const __m256i wabs = _mm256_abs_epi8(wv);
        for (int j = 0; j < T; ++j) {
          const __m256i pairs = _mm256_maddubs_epi16(wabs, _mm256_sign_epi8(x[j], wv));
          acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_madd_epi16(pairs, ones));
        }
      }
    }
  }
  for (int i = 0; i < R; ++i) {
    const float sw = w.row_scales[r + i] * w.tensor_scale;
    for (int j = 0; j < T; ++j) {
      int32_t sum = avx2::hsum(acc[i][j]);
      if constexpr (kVnni) {
        // In uint32 so that a wrapped lane total stays defined; the result is the exact int32.
        sum = static_cast<int32_t>(static_cast<uint32_t>(sum) - 128u * static_cast<uint32_t>(rowsum[r + i]));
      }
      y[(t + j) * ldy + (r + i - r0)] = static_cast<float>(sum) * a.scale[t + j] * sw;
    }
  }
}

using TileFn = void (*)(const PackedMatrix&, const std::vector<int32_t>&, const Int8Activations&, int64_t, int64_t,
                        int64_t, float*, int64_t);

template <bool kVnni>
TileFn pick(int r, int t) {
  if (t == 2) {
    return r == 4 ? tile<kVnni, 4, 2> : r == 3 ? tile<kVnni, 3, 2> : r == 2 ? tile<kVnni, 2, 2> : tile<kVnni, 1, 2>;
  }
  return r == 4 ? tile<kVnni, 4, 1> : r == 3 ? tile<kVnni, 3, 1> : r == 2 ? tile<kVnni, 2, 1> : tile<kVnni, 1, 1>;
}

template <bool kVnni>
void gemm(const PackedMatrix& w, const std::vector<int32_t>& rowsum, const Int8Activations& a, int64_t r0, int64_t r1,
          float* y, int64_t ldy) {
  for (int64_t r = r0; r < r1; r += 4) {
    const int nr = static_cast<int>(std::min<int64_t>(4, r1 - r));
    for (int64_t t = 0; t < a.tokens; t += 2) {
      pick<kVnni>(nr, static_cast<int>(std::min<int64_t>(2, a.tokens - t)))(w, rowsum, a, r, t, r0, y, ldy);
    }
  }
}

}  // namespace
}  // namespace lowbit
