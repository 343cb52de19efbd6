// W8A8 with AVX-512 VNNI (w8a8.h): vpdpbusd multiplies 64 unsigned activation
// bytes (q + 128) by 64 signed weight bytes and adds groups of four products
// into 16 int32 lanes. A register tile of R rows x T tokens (up to 4 x 4: 16
// accumulators) reuses each weight load T times and each activation load R
// times; the last 32 columns of a row (cols_padded is a multiple of 32) use a
// zero-masked load. The -128 * rowsum correction and the scales are applied
// once per output, in the reference's order, so results are bit-identical.
// GCC 12 flags the intrinsics headers' _mm512_undefined_* values as maybe uninitialized.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "kernels/w8a8.h"

namespace lowbit {
namespace {

template <int R, int T>
void tile(const PackedMatrix& w, const std::vector<int32_t>& rowsum, const Int8Activations& a, int64_t r, int64_t t,
          int64_t r0, float* y, int64_t ldy) {
  const int64_t k = w.cols_padded, rb = w.row_bytes();
  const uint8_t* wp[R];
  const uint8_t* xp[T];
  for (int i = 0; i < R; ++i) wp[i] = w.codes.data() + (r + i) * rb;
  for (int j = 0; j < T; ++j) xp[j] = a.u8.data() + (t + j) * a.cols_padded;
  __m512i acc[R][T];
  for (int i = 0; i < R; ++i) {
    for (int j = 0; j < T; ++j) acc[i][j] = _mm512_setzero_si512();
  }
  int64_t c = 0;
  for (; c + 64 <= k; c += 64) {
    __m512i x[T];
    for (int j = 0; j < T; ++j) x[j] = _mm512_loadu_si512(xp[j] + c);
    for (int i = 0; i < R; ++i) {
      const __m512i wv = _mm512_loadu_si512(wp[i] + c);
      for (int j = 0; j < T; ++j) acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], x[j], wv);
    }
  }
  if (c < k) {  // 32 columns left
    const __mmask64 m = 0xFFFFFFFFull;
    __m512i x[T];
    for (int j = 0; j < T; ++j) x[j] = _mm512_maskz_loadu_epi8(m, xp[j] + c);
    for (int i = 0; i < R; ++i) {
      const __m512i wv = _mm512_maskz_loadu_epi8(m, wp[i] + c);
      for (int j = 0; j < T; ++j) acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], x[j], wv);
    }
  }
  for (int i = 0; i < R; ++i) {
    const float sw = w.row_scales[r + i] * w.tensor_scale;
    for (int j = 0; j < T; ++j) {
      const int32_t sum = _mm512_reduce_add_epi32(acc[i][j]) - 128 * rowsum[r + i];
      y[(t + j) * ldy + (r + i - r0)] = static_cast<float>(sum) * a.scale[t + j] * sw;
    }
  }
}

using TileFn = void (*)(const PackedMatrix&, const std::vector<int32_t>&, const Int8Activations&, int64_t, int64_t,
                        int64_t, float*, int64_t);

template <int R>
constexpr TileFn tile_for(int t) {
  return t == 4 ? tile<R, 4> : t == 3 ? tile<R, 3> : t == 2 ? tile<R, 2> : tile<R, 1>;
}

TileFn pick(int r, int t) {
  return r == 4 ? tile_for<4>(t) : r == 3 ? tile_for<3>(t) : r == 2 ? tile_for<2>(t) : tile_for<1>(t);
}

void gemm(const PackedMatrix& w, const std::vector<int32_t>& rowsum, const Int8Activations& a, int64_t r0, int64_t r1,
          float* y, int64_t ldy) {
  for (int64_t r = r0; r < r1; r += 4) {
    const int nr = static_cast<int>(std::min<int64_t>(4, r1 - r));
    for (int64_t t = 0; t < a.tokens; t += 4) {
      const int nt = static_cast<int>(std::min<int64_t>(4, a.tokens - t));
      pick(nr, nt)(w, rowsum, a, r, t, r0, y, ldy);
    }
  }
}

// The first min(n, 16) of 16 lanes (n > 0).
inline __mmask16 lanes(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1);
}

}  // namespace

// Per token: a NaN scale when any x is NaN or infinite (the reference's rule), else
// amax over 16 lanes, then q = trunc(clamp(rne(x / s))) with the reference's
// IEEE division and round-half-even; clamp's operand order passes NaN through as
// std::clamp does, and the integer conversion truncates like static_cast<int>.
void quantize_rows_int8_avx512(const float* x, int64_t cols, int64_t t0, int64_t t1, Int8Activations& a) {
  const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7FFFFFFF));
  const __m512 lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
  const __m512i bias = _mm512_set1_epi32(128);
  for (int64_t t = t0; t < t1; ++t) {
    const float* xt = x + t * cols;
    __m512 m = _mm512_setzero_ps();
    __mmask16 bad = 0;
    for (int64_t c = 0; c < cols; c += 16) {
      const __mmask16 k = lanes(cols - c);
      const __m512 v = _mm512_maskz_loadu_ps(k, xt + c);
      const __m512 d = _mm512_sub_ps(v, v);  // NaN for a NaN or an infinity (masked lanes are 0)
      bad |= _mm512_cmp_ps_mask(d, d, _CMP_UNORD_Q);
      m = _mm512_max_ps(_mm512_and_ps(v, abs_mask), m);
    }
    if (bad != 0) {  // the reference's NaN scale (NaN outputs) for a non-finite token
      a.scale[t] = std::nanf("");
      continue;
    }
    const float amax = _mm512_reduce_max_ps(m);
    const float s = int_act_scale({}, amax, 127.0f);
    if (!(s > 0.0f)) continue;
    a.scale[t] = s;
    const __m512 sv = _mm512_set1_ps(s);
    uint8_t* u = a.u8.data() + t * a.cols_padded;
    for (int64_t c = 0; c < cols; c += 16) {
      const __mmask16 k = lanes(cols - c);
      __m512 q = _mm512_roundscale_ps(_mm512_div_ps(_mm512_maskz_loadu_ps(k, xt + c), sv),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      q = _mm512_min_ps(hi, _mm512_max_ps(lo, q));
      const __m512i v = _mm512_add_epi32(_mm512_cvttps_epi32(q), bias);
      _mm_mask_storeu_epi8(u + c, k, _mm512_cvtepi32_epi8(v));
    }
  }
}

W8A8Kernels w8a8_kernels_avx512vnni() { return {gemm, Isa::kAvx512Vnni}; }

}  // namespace lowbit
