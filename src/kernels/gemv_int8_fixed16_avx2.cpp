// int8/avx2+fixed16: the kInt8Row GEMV with 16-bit fixed-point activations on
// AVX2 (int8_fixed16.h has the arithmetic and the activation byte planes,
// shared with int8/avx512vnni: same xi, the same exact integer sum per row and
// the same float steps after it, so the two return the same bits).
//
// vpmaddubsw (unsigned x signed bytes) cannot take the codes directly: q + 128
// times a lo byte saturates its pair sum (2 * 255 * 128 > 2^15), and the sign
// trick (|q| x sign(lo, q)) wraps for lo = -128. So the kernel works on int16:
// once per call xi = 256 hi + lo is rebuilt from the two planes into an int16
// copy (|xi| <= 32639), and per 16 columns of a row one vpmovsxbw widens the
// codes and one vpmaddwd forms 8 exact int32 pair sums q0 xi0 + q1 xi1. An int32
// lane then gathers 2 products per 16 columns, |q xi| <= 128 * 32639, so it
// stays below 2^31 for 256 steps (4096 columns: 512 * 128 * 32639 < 2^31); the
// lanes are flushed into an int64 every 4096 columns. 3 vector uops per 16
// weights against 4 for int8/avx2 (widen, convert, FMA, and the x load); two rows
// share each activation load; codes are prefetched at two distances.
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "kernels/fixed16_avx2.h"
#include "kernels/int8_fixed16.h"
#include "kernels/packed_matrix.h"
#include "kernels/stream_prefetch.h"

namespace lowbit {
namespace {

inline constexpr int64_t kFlushColumns = 4096;

// Sum of 8 int32 lanes in int64 (each lane may be close to 2^31).
inline int64_t hsum64(__m256i v) {
  const __m256i s = _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(v)),
                                     _mm256_cvtepi32_epi64(_mm256_extracti128_si256(v, 1)));
  const __m128i t = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
  return _mm_cvtsi128_si64(t) + _mm_extract_epi64(t, 1);
}

// 8 int32 lanes of q0 xi0 + q1 xi1 over 16 columns at c.
inline __m256i dot16(const uint8_t* row, const int16_t* xi, int64_t c) {
  const __m256i q = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + c)));
  return _mm256_madd_epi16(q, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xi + c)));
}

void gemv(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  // Not prepared (layout not eligible) or x not finite: the FP32 kernel.
  if (!a.fixed.valid) return packed_kernels_int8_avx2().gemv(w, a, r0, r1, y);
  const int64_t n = w.cols_padded, plane = int8_fixed16_plane(w), rb = w.row_bytes();
  // xi [n] as int16 from the lo / hi planes.
  std::vector<int16_t> xi(static_cast<size_t>(n));
  const int8_t* lo = a.fixed.bytes.data();
  const int8_t* hi = lo + plane;
  for (int64_t c = 0; c < n; c += 16) {
    const __m256i l = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(lo + c)));
    const __m256i h = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(hi + c)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(xi.data() + c), _mm256_add_epi16(_mm256_slli_epi16(h, 8), l));
  }
  const double out_scale = static_cast<double>(a.fixed.scale) * w.tensor_scale;
  for (int64_t r = r0; r < r1; r += 2) {
    const bool pair = r + 1 < r1;  // a lone last row runs as both rows, its copy discarded
    const uint8_t* p0 = w.codes.data() + r * rb;
    const uint8_t* p1 = pair ? p0 + rb : p0;
    int64_t dot[2] = {0, 0};
    for (int64_t c0 = 0; c0 < n; c0 += kFlushColumns) {
      __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
      for (int64_t c = c0, end = std::min(n, c0 + kFlushColumns); c < end; c += 32) {  // n: a multiple of 32
        prefetch_stream(p0 + c);
        prefetch_stream(p1 + c);
        acc0 = _mm256_add_epi32(acc0, _mm256_add_epi32(dot16(p0, xi.data(), c), dot16(p0, xi.data(), c + 16)));
        acc1 = _mm256_add_epi32(acc1, _mm256_add_epi32(dot16(p1, xi.data(), c), dot16(p1, xi.data(), c + 16)));
      }
      dot[0] += hsum64(acc0);
      dot[1] += hsum64(acc1);
    }
    // The float steps of int8/avx512vnni, in its order.
    y[r - r0] = static_cast<float>(static_cast<double>(dot[0]) * out_scale * w.row_scales[r]);
    if (pair) y[r + 1 - r0] = static_cast<float>(static_cast<double>(dot[1]) * out_scale * w.row_scales[r + 1]);
  }
}

// prepare_int8_fixed16 (int8_fixed16.cpp) 16 columns at a time, equal to it byte for byte.
void prepare(const PackedMatrix& w, PackedActivation& a) {
  Fixed16Activation& f = a.fixed;
  f.valid = false;
  float amax = 0.0f;
  if (!int8_fixed16_eligible(w) || !fixed16_absmax_avx2(a.x.data(), w.cols_padded, &amax)) return;
  f.scale = amax / static_cast<float>(kFixed16Max);
  const __m256 inv = _mm256_set1_ps(amax > 0.0f ? static_cast<float>(kFixed16Max) / amax : 0.0f);
  const int64_t plane = int8_fixed16_plane(w);
  f.bytes.assign(static_cast<size_t>(2 * plane), 0);
  int64_t total = 0;
  for (int64_t c = 0; c < w.cols_padded; c += 16) {
    const Fixed16Lanes8 v = fixed16_lanes_avx2(a.x.data() + c, inv);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(f.bytes.data() + c), v.lo);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(f.bytes.data() + plane + c), v.hi);
    total += hsum64(_mm256_add_epi32(v.xi_a, v.xi_b));
  }
  f.group_sums.clear();  // one group, the row: its sum is `total`
  f.total = total;
  f.valid = true;
}

void dequantize_rows(const PackedMatrix& w, int64_t r0, int64_t r1, float* out) {
  packed_kernels_int8_avx2().dequantize_rows(w, r0, r1, out);
}

}  // namespace

PackedKernels packed_kernels_int8_fixed16_avx2() {
  return {gemv, dequantize_rows, Isa::kAvx2, prepare};
}

}  // namespace lowbit
