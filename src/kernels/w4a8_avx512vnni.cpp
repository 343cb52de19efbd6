// W4A8 with AVX-512 VNNI (w4a8.h). One 16-byte load holds a 32-column block's
// codes: the low nibbles (columns 0..15) and high nibbles (16..31) become the
// two halves of a 32-byte vector of unsigned codes (xor 8 for two's-complement
// INT4), vpdpbusd multiplies them by the 32 signed activations (u xor 0x80) and
// adds into 8 int32 lanes; the lanes are summed once per group (exact), and the
// float steps run in w4a8_finish, shared with the reference.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <algorithm>

#include "kernels/avx2_lanes.h"
#include "kernels/w4a8.h"

namespace lowbit {

void group_activation_sums_rows_avx512(const PackedMatrix& w, const Int8Activations& a, int64_t t0, int64_t t1,
                                       int32_t* qsum) {
  const int64_t ng = w.n_groups();
  const __m512i zero = _mm512_setzero_si512();
  for (int64_t t = t0; t < t1; ++t) {
    const uint8_t* u = a.u8.data() + t * a.cols_padded;
    for (int64_t g = 0; g < ng; ++g) {
      const int64_t c0 = g * w.group, c1 = std::min<int64_t>(w.cols_padded, c0 + w.group);
      // vpsadbw against 0: eight 64-bit lanes, each the sum of 8 bytes of u (exact).
      __m512i s = zero;
      for (int64_t c = c0; c < c1; c += 64) {
        const __mmask64 m = c1 - c >= 64 ? ~__mmask64{0} : (__mmask64{1} << (c1 - c)) - 1;
        s = _mm512_add_epi64(s, _mm512_sad_epu8(_mm512_maskz_loadu_epi8(m, u + c), zero));
      }
      // sum of u, then minus 128 per column: sum of q (as the portable loop)
      qsum[t * ng + g] = static_cast<int32_t>(_mm512_reduce_add_epi64(s)) - 128 * static_cast<int32_t>(c1 - c0);
    }
  }
}

void w4a8_avx512vnni(const PackedMatrix& w, const Int8Activations& a, const std::vector<int32_t>& qsum, int64_t r0,
                     int64_t r1, float* y, int64_t ldy) {
  // Whole 32-column blocks per group, or exactly two groups per block (16); a
  // group of 48, 80, ... would split a block unevenly: the reference does those
  // (this loop never advanced past such a block before).
  if (w.group != 16 && w.group % 32 != 0) {
    w4a8_reference(w, a, qsum, r0, r1, y, ldy);
    return;
  }
  bool signed_codes = false;
  w4a8_supported(w, &signed_codes);
  const int64_t ng = w.n_groups(), nb = w.cols_padded / 32, rb = w.row_bytes();
  const __m128i nibble = _mm_set1_epi8(0x0F);
  const __m256i flip = _mm256_set1_epi8(signed_codes ? 0x08 : 0x00);
  const __m256i sign = _mm256_set1_epi8(static_cast<char>(0x80));
  std::vector<int32_t> dots(static_cast<size_t>(ng));
  for (int64_t t = 0; t < a.tokens; ++t) {
    const uint8_t* u = a.u8.data() + t * a.cols_padded;
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* codes = w.codes.data() + r * rb;
      // Groups of 16 split a block: half-blocks then add into separate groups.
      std::fill(dots.begin(), dots.end(), 0);
      for (int64_t b = 0; b < nb;) {
        const int64_t g = 32 * b / w.group;
        if (w.group == 16) {
          const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + 16 * b));
          const __m256i c = _mm256_xor_si256(
              _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), nibble), _mm_and_si128(v, nibble)), flip);
          const __m256i q = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(u + 32 * b)), sign);
          const __m256i d = _mm256_dpbusd_epi32(_mm256_setzero_si256(), c, q);
          dots[2 * b] += avx2::hsum(_mm256_blend_epi32(d, _mm256_setzero_si256(), 0xF0));
          dots[2 * b + 1] += avx2::hsum(_mm256_blend_epi32(d, _mm256_setzero_si256(), 0x0F));
          ++b;
          continue;
        }
        const int64_t end = std::min(nb, (g + 1) * w.group / 32);
        __m256i acc = _mm256_setzero_si256();
        for (; b < end; ++b) {
          const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + 16 * b));
          const __m256i c = _mm256_xor_si256(
              _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), nibble), _mm_and_si128(v, nibble)), flip);
          const __m256i q = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(u + 32 * b)), sign);
          acc = _mm256_dpbusd_epi32(acc, c, q);
        }
        dots[g] += avx2::hsum(acc);
      }
      if (signed_codes) {
        for (int64_t g = 0; g < ng; ++g) dots[g] -= 8 * qsum[t * ng + g];
      }
      y[t * ldy + (r - r0)] = w4a8_finish(w, a, qsum, t, r, dots.data());
    }
  }
}

}  // namespace lowbit
