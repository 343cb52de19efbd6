// W4A4 with AVX-512 VNNI (w4a4.h). A step covers 64 columns (two 32-column
// blocks): 32 bytes of weight codes and 32 bytes of activation codes are split
// into nibbles, [low nibbles | high nibbles] as one 64-byte vector each, so dword
// lane L of a vpdpbusd holds the four products of
//   lanes 0-3: columns 0-15, 4-7: 32-47, 8-11: 16-31, 12-15: 48-63
// (the same permutation for weights and activations). Weights are the unsigned
// operand (code, or code ^ 8 for two's-complement INT4), activations the signed
// one (q = nibble - 8; zeroed past cols_padded). A register tile of R rows x T
// tokens (up to 4 x 4) reuses each unpacked weight T times and each activation R
// times. Sub-block dots (exact int32) are lane sums: the whole vector after B/64
// steps when B is a multiple of 64, masked halves (B = 32) or quarters (B = 16)
// of every step; other B run the reference. The float steps are w4a4_finish's.
// GCC 12 flags the intrinsics headers' _mm512_undefined_* values as maybe uninitialized.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <algorithm>

#include "kernels/w4a4.h"
#include "kernels/w4a8.h"

namespace lowbit {
namespace {

// 64 nibbles of a step (32 bytes, or the first 16 when `half`) as 64 bytes [low | high].
inline __m512i unpack(const uint8_t* p, bool half) {
  const __m256i v = _mm256_maskz_loadu_epi8(half ? 0xFFFFu : 0xFFFFFFFFu, p);
  const __m256i m = _mm256_set1_epi8(0x0F);
  const __m256i lo = _mm256_and_si256(v, m);
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m);
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

// Dword-lane masks of the 16-column quarters of a step, in column order.
constexpr __mmask16 kQuarter[4] = {0x000F, 0x0F00, 0x00F0, 0xF000};
// Of the 32-column halves.
constexpr __mmask16 kHalf[2] = {0x0F0F, 0xF0F0};
// Bytes of a half step's valid columns (the first block: bytes 0-15 and 32-47).
constexpr __mmask64 kHalfStepBytes = 0x0000FFFF0000FFFFull;

struct Ctx {
  const PackedMatrix* w;
  const Int4Activations* a;
  int64_t block;  // B
  int64_t nk;     // sub-blocks per row
  __m512i flip;   // 8 for two's-complement weights
  int32_t* dots;  // [R * T][nk]
};

template <int R, int T>
void tile(const Ctx& cx, int64_t r, int64_t t) {
  const PackedMatrix& w = *cx.w;
  const Int4Activations& a = *cx.a;
  const int64_t cp = a.cols_padded, rb = w.row_bytes(), ab = cp / 2, b = cx.block, nk = cx.nk;
  const __m512i eight = _mm512_set1_epi8(8);
  __m512i acc[R][T];
  for (int i = 0; i < R; ++i) {
    for (int j = 0; j < T; ++j) acc[i][j] = _mm512_setzero_si512();
  }
  for (int64_t c = 0; c < cp; c += 64) {
    const bool half = c + 64 > cp;
    const __mmask64 valid = half ? kHalfStepBytes : ~0ull;
    __m512i x[T];
    for (int j = 0; j < T; ++j) {
      x[j] = _mm512_maskz_sub_epi8(valid, unpack(a.codes.data() + (t + j) * ab + c / 2, half), eight);
    }
    for (int i = 0; i < R; ++i) {
      const __m512i wv = _mm512_xor_si512(unpack(w.codes.data() + (r + i) * rb + c / 2, half), cx.flip);
      for (int j = 0; j < T; ++j) acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], wv, x[j]);
    }
    if (b % 64 == 0) {
      if ((c + 64) % b != 0 && c + 64 < cp) continue;
      const int64_t k = c / b;
      for (int i = 0; i < R; ++i) {
        for (int j = 0; j < T; ++j) {
          cx.dots[(i * T + j) * nk + k] = _mm512_reduce_add_epi32(acc[i][j]);
          acc[i][j] = _mm512_setzero_si512();
        }
      }
      continue;
    }
    const int parts = b == 32 ? 2 : 4;
    const __mmask16* masks = b == 32 ? kHalf : kQuarter;
    for (int i = 0; i < R; ++i) {
      for (int j = 0; j < T; ++j) {
        for (int p = 0; p < parts; ++p) {
          const int64_t k = c / b + p;
          if (k < nk) cx.dots[(i * T + j) * nk + k] = _mm512_mask_reduce_add_epi32(masks[p], acc[i][j]);
        }
        acc[i][j] = _mm512_setzero_si512();
      }
    }
  }
}

using TileFn = void (*)(const Ctx&, int64_t, int64_t);

template <int R>
constexpr TileFn tile_for(int t) {
  return t == 4 ? tile<R, 4> : t == 3 ? tile<R, 3> : t == 2 ? tile<R, 2> : tile<R, 1>;
}

TileFn pick(int r, int t) {
  return r == 4 ? tile_for<4>(t) : r == 3 ? tile_for<3>(t) : r == 2 ? tile_for<2>(t) : tile_for<1>(t);
}

}  // namespace

void w4a4_avx512vnni(const PackedMatrix& w, const Int4Activations& a, const std::vector<int32_t>& qsum, int64_t r0,
                     int64_t r1, float* y, int64_t ldy) {
  const int64_t b = w4a4_block(w, a);
  if (b % 64 != 0 && b != 32 && b != 16) {
    w4a4_reference(w, a, qsum, r0, r1, y, ldy);
    return;
  }
  bool signed_codes = false;
  w4a8_supported(w, &signed_codes);
  const int64_t nk = (a.cols_padded + b - 1) / b;
  std::vector<int32_t> dots(static_cast<size_t>(16 * nk));  // [4 rows * 4 tokens][nk]
  const Ctx cx{&w, &a, b, nk, _mm512_set1_epi8(signed_codes ? 8 : 0), dots.data()};
  for (int64_t r = r0; r < r1; r += 4) {
    const int nr = static_cast<int>(std::min<int64_t>(4, r1 - r));
    for (int64_t t = 0; t < a.tokens; t += 4) {
      const int nt = static_cast<int>(std::min<int64_t>(4, a.tokens - t));
      pick(nr, nt)(cx, r, t);
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
