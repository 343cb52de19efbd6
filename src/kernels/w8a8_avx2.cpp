// W8A8 with AVX2 (w8a8.h). vpmaddubsw multiplies unsigned by signed bytes and
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
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "kernels/avx2_lanes.h"
#include "kernels/w8a8.h"

namespace lowbit {
namespace {

template <int R, int T>
void tile(const PackedMatrix& w, const Int8Activations& a, int64_t r, int64_t t, int64_t r0, float* y, int64_t ldy) {
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
    __m256i q[T];
    for (int j = 0; j < T; ++j) q[j] = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xp[j] + c)), flip);
    for (int i = 0; i < R; ++i) {
      const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp[i] + c));
      const __m256i wabs = _mm256_abs_epi8(wv);
      for (int j = 0; j < T; ++j) {
        const __m256i pairs = _mm256_maddubs_epi16(wabs, _mm256_sign_epi8(q[j], wv));
        acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_madd_epi16(pairs, ones));
      }
    }
  }
  for (int i = 0; i < R; ++i) {
    const float sw = w.row_scales[r + i] * w.tensor_scale;
    for (int j = 0; j < T; ++j) {
      y[(t + j) * ldy + (r + i - r0)] = static_cast<float>(avx2::hsum(acc[i][j])) * a.scale[t + j] * sw;
    }
  }
}

using TileFn = void (*)(const PackedMatrix&, const Int8Activations&, int64_t, int64_t, int64_t, float*, int64_t);

TileFn pick(int r, int t) {
  if (t == 2) return r == 4 ? tile<4, 2> : r == 3 ? tile<3, 2> : r == 2 ? tile<2, 2> : tile<1, 2>;
  return r == 4 ? tile<4, 1> : r == 3 ? tile<3, 1> : r == 2 ? tile<2, 1> : tile<1, 1>;
}

void gemm(const PackedMatrix& w, const std::vector<int32_t>& rowsum, const Int8Activations& a, int64_t r0, int64_t r1,
          float* y, int64_t ldy) {
  for (int64_t r = r0; r < r1; r += 4) {
    const int nr = static_cast<int>(std::min<int64_t>(4, r1 - r));
    for (int64_t t = 0; t < a.tokens; t += 2) {
      pick(nr, static_cast<int>(std::min<int64_t>(2, a.tokens - t)))(w, a, r, t, r0, y, ldy);
    }
  }
}

}  // namespace

// quantize_rows_int8_generic 8 columns at a time: the same IEEE division,
// rounding to nearest even (vroundps as nearbyint), clamp and +128; a token with
// a NaN or infinity gets a NaN scale and keeps q = 0, as there.
void quantize_rows_int8_avx2(const float* x, int64_t cols, int64_t t0, int64_t t1, Int8Activations& a) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  const __m256 lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
  const __m256i bias = _mm256_set1_epi32(128);
  // Byte 0 of each int32 lane to bytes 0..3 of each 128-bit half, then the halves' first dwords together.
  const __m256i gather = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12, -1,
                                          -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m256i halves = _mm256_setr_epi32(0, 4, 0, 0, 0, 0, 0, 0);
  const int64_t full = cols / 8 * 8;
  for (int64_t t = t0; t < t1; ++t) {
    const float* xt = x + t * cols;
    __m256 m = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
    for (int64_t c = 0; c < full; c += 8) {
      const __m256 v = _mm256_loadu_ps(xt + c);
      const __m256 d = _mm256_sub_ps(v, v);  // NaN for a NaN or an infinity
      bad = _mm256_or_ps(bad, _mm256_cmp_ps(d, d, _CMP_UNORD_Q));
      m = _mm256_max_ps(m, _mm256_and_ps(v, abs_mask));
    }
    float amax = 0.0f;
    bool finite = _mm256_movemask_ps(bad) == 0;
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, m);
    for (float v : lanes) amax = std::max(amax, v);
    for (int64_t c = full; c < cols; ++c) {
      finite = finite && std::isfinite(xt[c]);
      amax = std::max(amax, std::fabs(xt[c]));
    }
    if (!finite) {
      a.scale[t] = std::nanf("");
      continue;
    }
    const float s = int_act_scale({}, amax, 127.0f);
    if (!(s > 0.0f)) continue;
    a.scale[t] = s;
    const __m256 sv = _mm256_set1_ps(s);
    uint8_t* u = a.u8.data() + t * a.cols_padded;
    for (int64_t c = 0; c < full; c += 8) {
      __m256 q = _mm256_round_ps(_mm256_div_ps(_mm256_loadu_ps(xt + c), sv),
                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      q = _mm256_min_ps(hi, _mm256_max_ps(lo, q));
      const __m256i v = _mm256_add_epi32(_mm256_cvttps_epi32(q), bias);
      const __m256i b = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(v, gather), halves);
      _mm_storel_epi64(reinterpret_cast<__m128i*>(u + c), _mm256_castsi256_si128(b));
    }
    for (int64_t c = full; c < cols; ++c) {
      const float q = std::clamp(std::nearbyint(xt[c] / s), -127.0f, 127.0f);
      u[c] = static_cast<uint8_t>(static_cast<int>(q) + 128);
    }
  }
}

W8A8Kernels w8a8_kernels_avx2() { return {gemm, Isa::kAvx2}; }

}  // namespace lowbit
