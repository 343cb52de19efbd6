// W4A8 with AVX2 (w4a8.h). A 32-column block's 16 code bytes are broadcast to
// both 128-bit halves; the low half keeps the low nibbles (columns 0..15), the
// high half takes the high nibbles (16..31), giving 32 unsigned codes in 0..15
// (xor 8 for two's-complement INT4) in column order without a cross-lane
// shuffle. vpmaddubsw multiplies them by the 32 signed activations (u xor 0x80)
// and adds pairs into int16: |pair| <= 2 * 15 * 127 = 3810, so up to 8 blocks
// (8 * 3810 = 30480 < 2^15) add in int16 before vpmaddwd by ones widens them to
// int32. The group dots are exact; the float steps run in w4a8_finish, shared
// with the reference, so results are bit-identical.
#include <immintrin.h>

#include <algorithm>

#include "kernels/avx2_lanes.h"
#include "kernels/w4a8.h"

namespace lowbit {
namespace {

// Blocks whose int16 pair sums may be added before widening (see above).
constexpr int64_t kInt16Blocks = 8;

struct BlockDot {
  __m256i nibble = _mm256_set1_epi8(0x0F);
  __m256i flip;  // 0x08 for two's-complement codes, else 0
  __m256i sign = _mm256_set1_epi8(static_cast<char>(0x80));

  // 16 int16 lanes: lanes 0..7 hold column pairs of 0..15, lanes 8..15 of 16..31.
  __m256i operator()(const uint8_t* codes, const uint8_t* u) const {
    const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes)));
    const __m256i c = _mm256_xor_si256(_mm256_and_si256(_mm256_blend_epi32(v, _mm256_srli_epi16(v, 4), 0xF0), nibble), flip);
    const __m256i q = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(u)), sign);
    return _mm256_maddubs_epi16(c, q);
  }
};

}  // namespace

void w4a8_avx2(const PackedMatrix& w, const Int8Activations& a, const std::vector<int32_t>& qsum, int64_t r0,
               int64_t r1, float* y, int64_t ldy) {
  bool signed_codes = false;
  w4a8_supported(w, &signed_codes);
  const int64_t ng = w.n_groups(), nb = w.cols_padded / 32, rb = w.row_bytes();
  const int64_t blocks_per_group = w.group / 32;  // 0 when a group is 16 columns
  const __m256i ones = _mm256_set1_epi16(1);
  BlockDot dot;
  dot.flip = _mm256_set1_epi8(signed_codes ? 0x08 : 0x00);
  std::vector<int32_t> dots(static_cast<size_t>(ng));
  for (int64_t t = 0; t < a.tokens; ++t) {
    const uint8_t* u = a.u8.data() + t * a.cols_padded;
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* codes = w.codes.data() + r * rb;
      if (w.group % 32 == 0) {
        for (int64_t g = 0; g < ng; ++g) {
          const int64_t b1 = std::min(nb, (g + 1) * blocks_per_group);
          __m256i acc = _mm256_setzero_si256();
          for (int64_t b = g * blocks_per_group; b < b1;) {
            const int64_t end = std::min(b1, b + kInt16Blocks);
            __m256i s16 = _mm256_setzero_si256();
            for (; b < end; ++b) s16 = _mm256_add_epi16(s16, dot(codes + 16 * b, u + 32 * b));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(s16, ones));
          }
          dots[g] = avx2::hsum(acc);
        }
      } else {
        // Groups of an odd multiple of 16 columns: each block half goes to its own group.
        std::fill(dots.begin(), dots.end(), 0);
        for (int64_t b = 0; b < nb; ++b) {
          const __m256i d = _mm256_madd_epi16(dot(codes + 16 * b, u + 32 * b), ones);
          dots[32 * b / w.group] += avx2::hsum(_mm256_castsi256_si128(d));
          dots[(32 * b + 16) / w.group] += avx2::hsum(_mm256_extracti128_si256(d, 1));
        }
      }
      if (signed_codes) {
        for (int64_t g = 0; g < ng; ++g) dots[g] -= 8 * qsum[t * ng + g];
      }
      y[t * ldy + (r - r0)] = w4a8_finish(w, a, qsum, t, r, dots.data());
    }
  }
}

}  // namespace lowbit
