// W4A4 with AVX2 (w4a4.h). A step is one 32-column block: its 16 bytes of
// weight codes and 16 bytes of activation codes are split into nibbles, [low
// nibbles | high nibbles] as one 32-byte vector each, so dword lane L of
// vpmaddwd(vpmaddubsw(w, x), 1) holds the four products of columns 4L..4L+3 of
// the block (lanes 0-3: columns 0-15, lanes 4-7: columns 16-31). Weights are the
// unsigned operand (code, or code ^ 8 for two's-complement INT4), activations
// the signed one (q = nibble - 8). vpmaddubsw adds two products into int16:
// |15 * 7 + 15 * 7| = 210, far from saturation, so every dot is exact. A
// register tile of R rows x T tokens (up to 2 x 4: 8 accumulators, 4 activation
// vectors and a weight vector in the 16 YMM registers) reuses each unpacked
// weight T times and each activation R times. Sub-block dots (exact int32) are
// lane sums: the whole vector after B/32 steps when B is a multiple of 32, each
// 128-bit half when B = 16; other B run the reference. The float steps are
// w4a4_finish's, so the output is the reference's bit for bit.
#include <immintrin.h>

#include <algorithm>

#include "kernels/avx2_lanes.h"
#include "kernels/w4a4.h"
#include "kernels/w4a8.h"

namespace lowbit {
namespace {

// The 32 nibbles of a block (16 bytes) as 32 bytes [low | high].
inline __m256i unpack(const uint8_t* p) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i m = _mm_set1_epi8(0x0F);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m), _mm_and_si128(v, m));
}

struct Ctx {
  const PackedMatrix* w;
  const Int4Activations* a;
  int64_t block;  // B
  int64_t nk;     // sub-blocks per row
  __m256i flip;   // 8 for two's-complement weights
  int32_t* dots;  // [R * T][nk]
};

template <int R, int T>
void tile(const Ctx& cx, int64_t r, int64_t t) {
  const PackedMatrix& w = *cx.w;
  const Int4Activations& a = *cx.a;
  const int64_t cp = a.cols_padded, rb = w.row_bytes(), ab = cp / 2, b = cx.block, nk = cx.nk;
  const __m256i eight = _mm256_set1_epi8(8), ones = _mm256_set1_epi16(1);
  __m256i acc[R][T];
  for (int i = 0; i < R; ++i) {
    for (int j = 0; j < T; ++j) acc[i][j] = _mm256_setzero_si256();
  }
  for (int64_t c = 0; c < cp; c += 32) {
    __m256i x[T];
    for (int j = 0; j < T; ++j) x[j] = _mm256_sub_epi8(unpack(a.codes.data() + (t + j) * ab + c / 2), eight);
    for (int i = 0; i < R; ++i) {
      const __m256i wv = _mm256_xor_si256(unpack(w.codes.data() + (r + i) * rb + c / 2), cx.flip);
      for (int j = 0; j < T; ++j) {
        acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_madd_epi16(_mm256_maddubs_epi16(wv, x[j]), ones));
      }
    }
    if (b % 32 == 0) {
      if ((c + 32) % b != 0 && c + 32 < cp) continue;
      const int64_t k = c / b;
      for (int i = 0; i < R; ++i) {
        for (int j = 0; j < T; ++j) {
          cx.dots[(i * T + j) * nk + k] = avx2::hsum(acc[i][j]);
          acc[i][j] = _mm256_setzero_si256();
        }
      }
      continue;
    }
    // B = 16: columns 0-15 are the low 128 bits, 16-31 the high ones.
    const int64_t k = c / 16;
    for (int i = 0; i < R; ++i) {
      for (int j = 0; j < T; ++j) {
        int32_t* d = cx.dots + (i * T + j) * nk;
        d[k] = avx2::hsum(_mm256_castsi256_si128(acc[i][j]));
        if (k + 1 < nk) d[k + 1] = avx2::hsum(_mm256_extracti128_si256(acc[i][j], 1));
        acc[i][j] = _mm256_setzero_si256();
      }
    }
  }
}

using TileFn = void (*)(const Ctx&, int64_t, int64_t);

template <int R>
constexpr TileFn tile_for(int t) {
  return t == 4 ? tile<R, 4> : t == 3 ? tile<R, 3> : t == 2 ? tile<R, 2> : tile<R, 1>;
}

}  // namespace

void w4a4_avx2(const PackedMatrix& w, const Int4Activations& a, const std::vector<int32_t>& qsum, int64_t r0,
               int64_t r1, float* y, int64_t ldy) {
  const int64_t b = w4a4_block(w, a);
  if (b % 32 != 0 && b != 16) {
    w4a4_reference(w, a, qsum, r0, r1, y, ldy);
    return;
  }
  bool signed_codes = false;
  w4a8_supported(w, &signed_codes);
  const int64_t nk = (a.cols_padded + b - 1) / b;
  std::vector<int32_t> dots(static_cast<size_t>(8 * nk));  // [2 rows * 4 tokens][nk]
  const Ctx cx{&w, &a, b, nk, _mm256_set1_epi8(signed_codes ? 8 : 0), dots.data()};
  for (int64_t r = r0; r < r1; r += 2) {
    const int nr = static_cast<int>(std::min<int64_t>(2, r1 - r));
    for (int64_t t = 0; t < a.tokens; t += 4) {
      const int nt = static_cast<int>(std::min<int64_t>(4, a.tokens - t));
      (nr == 2 ? tile_for<2>(nt) : tile_for<1>(nt))(cx, r, t);
      for (int i = 0; i < nr; ++i) {
        for (int j = 0; j < nt; ++j) {
          int32_t* d = dots.data() + (i * nt + j) * nk;
          if (signed_codes) {
            for (int64_t k = 0; k < nk; ++k) d[k] -= 8 * qsum[(t + j) * nk + k];
          }
          y[(t + j) * ldy + (r + i - r0)] = w4a4_finish(w, a, qsum, t + j, r + i, d);
        }
      }
    }
  }
}

}  // namespace lowbit
