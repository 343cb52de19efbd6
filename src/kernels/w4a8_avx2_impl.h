// The W4A8 kernel on 256-bit registers, shared by two translation units compiled
// for their ISA (internal linkage: each holds its own copy): w4a8_kernel<false>,
// w4a8/avx2 (w4a8_avx2.cpp), and w4a8_kernel<true>, w4a8/avxvnni
// (w4a8_avxvnni.cpp, -mavxvnni).
//
// A 32-column block's 16 code bytes are broadcast to both 128-bit halves; the
// low half keeps the low nibbles (columns 0..15), the high half takes the high
// nibbles (16..31), giving 32 unsigned codes in 0..15 (xor 8 for two's-complement
// INT4) in column order without a cross-lane shuffle; the activations are the
// 32 signed bytes q = u xor 0x80.
//   AVX2: vpmaddubsw multiplies codes by q and adds pairs into int16:
//     |pair| <= 2 * 15 * 127 = 3810, so up to 8 blocks (8 * 3810 = 30480 < 2^15)
//     add in int16 before vpmaddwd by ones widens them to int32.
//   AVX-VNNI: vpdpbusd (VEX) multiplies the same unsigned codes by q and adds
//     groups of four products straight into the 8 int32 lanes: one instruction
//     per block instead of vpmaddubsw, an int16 add and 1/8 of a vpmaddwd; a
//     group's lane total is at most 15 * 127 * group, far below 2^31.
// Both give lanes 0..3 = columns 0..15 and lanes 4..7 = columns 16..31, the
// same exact group dots; the float steps run in w4a8_finish, shared with the
// reference, so results are bit-identical.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "kernels/avx2_lanes.h"
#include "kernels/w4a8.h"

namespace lowbit {
namespace {

// Blocks whose int16 pair sums may be added before widening (AVX2, see above).
constexpr int64_t kInt16Blocks = 8;

struct BlockCodes {
  __m256i nibble = _mm256_set1_epi8(0x0F);
  __m256i flip;  // 0x08 for two's-complement codes, else 0
  __m256i sign = _mm256_set1_epi8(static_cast<char>(0x80));

  // The 32 unsigned codes of a block, in column order.
  __m256i codes(const uint8_t* p) const {
    const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_xor_si256(_mm256_and_si256(_mm256_blend_epi32(v, _mm256_srli_epi16(v, 4), 0xF0), nibble), flip);
  }
  // The 32 signed activations q of a block.
  __m256i acts(const uint8_t* u) const {
    return _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(u)), sign);
  }
  // AVX2: 16 int16 lanes, lanes 0..7 hold column pairs of 0..15, lanes 8..15 of 16..31.
  __m256i pairs(const uint8_t* p, const uint8_t* u) const { return _mm256_maddubs_epi16(codes(p), acts(u)); }
};

// acc + the block's products in 8 int32 lanes (AVX-VNNI only).
template <bool kVnni>
inline __m256i add_block_dot(__m256i acc, const BlockCodes& b, const uint8_t* p, const uint8_t* u) {
  if constexpr (kVnni) {
    return _mm256_dpbusd_avx_epi32(acc, b.codes(p), b.acts(u));
  } else {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(b.pairs(p, u), _mm256_set1_epi16(1)));
  }
}

// The group dots of one (token, row): dots [n_groups].
template <bool kVnni>
void row_dots(const PackedMatrix& w, const BlockCodes& b, const uint8_t* codes, const uint8_t* u, int32_t* dots) {
  const int64_t ng = w.n_groups(), nb = w.cols_padded / 32;
  const int64_t blocks_per_group = w.group / 32;  // 0 when a group is 16 columns
  if (w.group % 32 == 0) {
    for (int64_t g = 0; g < ng; ++g) {
      const int64_t b1 = std::min(nb, (g + 1) * blocks_per_group);
      __m256i acc = _mm256_setzero_si256();
      if constexpr (kVnni) {
        for (int64_t k = g * blocks_per_group; k < b1; ++k) acc = add_block_dot<true>(acc, b, codes + 16 * k, u + 32 * k);
      } else {
        for (int64_t k = g * blocks_per_group; k < b1;) {
          const int64_t end = std::min(b1, k + kInt16Blocks);
          __m256i s16 = _mm256_setzero_si256();
          for (; k < end; ++k) s16 = _mm256_add_epi16(s16, b.pairs(codes + 16 * k, u + 32 * k));
          acc = _mm256_add_epi32(acc, _mm256_madd_epi16(s16, _mm256_set1_epi16(1)));
        }
      }
      dots[g] = avx2::hsum(acc);
    }
    return;
  }
  // Groups of an odd multiple of 16 columns: each block half goes to its own group.
  std::fill(dots, dots + ng, 0);
  for (int64_t k = 0; k < nb; ++k) {
    const __m256i d = add_block_dot<kVnni>(_mm256_setzero_si256(), b, codes + 16 * k, u + 32 * k);
    dots[32 * k / w.group] += avx2::hsum(_mm256_castsi256_si128(d));
    dots[(32 * k + 16) / w.group] += avx2::hsum(_mm256_extracti128_si256(d, 1));
  }
}

template <bool kVnni>
void w4a8_kernel(const PackedMatrix& w, const Int8Activations& a, const std::vector<int32_t>& qsum, int64_t r0,
                 int64_t r1, float* y, int64_t ldy) {
  bool signed_codes = false;
  w4a8_supported(w, &signed_codes);
  const int64_t ng = w.n_groups(), rb = w.row_bytes();
  BlockCodes b;
  b.flip = _mm256_set1_epi8(signed_codes ? 0x08 : 0x00);
  std::vector<int32_t> dots(static_cast<size_t>(ng));
  for (int64_t t = 0; t < a.tokens; ++t) {
    const uint8_t* u = a.u8.data() + t * a.cols_padded;
    for (int64_t r = r0; r < r1; ++r) {
      row_dots<kVnni>(w, b, w.codes.data() + r * rb, u, dots.data());
      if (signed_codes) {
        for (int64_t g = 0; g < ng; ++g) dots[g] -= 8 * qsum[t * ng + g];
      }
      y[t * ldy + (r - r0)] = w4a8_finish(w, a, qsum, t, r, dots.data());
    }
  }
}

}  // namespace
}  // namespace lowbit
