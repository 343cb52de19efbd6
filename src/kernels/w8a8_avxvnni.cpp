// W8A8 with AVX-VNNI (w8a8.h; level avxvnni, cpu_features.h): the VEX vpdpbusd
// multiplies 32 unsigned activation bytes (q + 128) by 32 signed weight bytes and
// adds groups of four products into 8 int32 lanes: one instruction per 32
// columns where the AVX2 kernel (w8a8_avx2.cpp) needs vpabsb, vpsignb, vpmaddubsw,
// vpmaddwd and an add. A register tile of R <= 4 rows x T <= 2 tokens (8
// accumulators) reuses each weight load T times and each activation load R times;
// cols_padded is a multiple of 32, so there is no tail. The int32 lanes may wrap
// on the way; their total minus 128 * rowsum is the exact integer of the
// reference wherever it fits in int32 (|sum q w| <= cols * 127 * 128), as in the
// AVX-512 VNNI kernel; then the scales in the reference's order: bit-identical.
#include <immintrin.h>

#include <algorithm>

#include "kernels/avx2_lanes.h"
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
  __m256i acc[R][T];
  for (int i = 0; i < R; ++i) {
    for (int j = 0; j < T; ++j) acc[i][j] = _mm256_setzero_si256();
  }
  for (int64_t c = 0; c < k; c += 32) {
    __m256i x[T];
    for (int j = 0; j < T; ++j) x[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xp[j] + c));
    for (int i = 0; i < R; ++i) {
      const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp[i] + c));
      for (int j = 0; j < T; ++j) acc[i][j] = _mm256_dpbusd_avx_epi32(acc[i][j], x[j], wv);
    }
  }
  for (int i = 0; i < R; ++i) {
    const float sw = w.row_scales[r + i] * w.tensor_scale;
    for (int j = 0; j < T; ++j) {
      // In uint32 so that a wrapped lane total stays defined; the result is the exact int32.
      const uint32_t total = static_cast<uint32_t>(avx2::hsum(acc[i][j])) - 128u * static_cast<uint32_t>(rowsum[r + i]);
      y[(t + j) * ldy + (r + i - r0)] = static_cast<float>(static_cast<int32_t>(total)) * a.scale[t + j] * sw;
    }
  }
}

using TileFn = void (*)(const PackedMatrix&, const std::vector<int32_t>&, const Int8Activations&, int64_t, int64_t,
                        int64_t, float*, int64_t);

TileFn pick(int r, int t) {
  if (t == 2) return r == 4 ? tile<4, 2> : r == 3 ? tile<3, 2> : r == 2 ? tile<2, 2> : tile<1, 2>;
  return r == 4 ? tile<4, 1> : r == 3 ? tile<3, 1> : r == 2 ? tile<2, 1> : tile<1, 1>;
}

void gemm(const PackedMatrix& w, const std::vector<int32_t>& rowsum, const Int8Activations& a, int64_t r0, int64_t r1,
          float* y, int64_t ldy) {
  for (int64_t r = r0; r < r1; r += 4) {
    const int nr = static_cast<int>(std::min<int64_t>(4, r1 - r));
    for (int64_t t = 0; t < a.tokens; t += 2) {
      pick(nr, static_cast<int>(std::min<int64_t>(2, a.tokens - t)))(w, rowsum, a, r, t, r0, y, ldy);
    }
  }
}

}  // namespace

W8A8Kernels w8a8_kernels_avxvnni() { return {gemm, Isa::kAvxVnni}; }

}  // namespace lowbit
