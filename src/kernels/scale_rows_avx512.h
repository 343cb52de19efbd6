// A row of 2-byte group scale codes (FP16, or BF16) converted to FP32 with
// AVX-512, for the grouped-layout kernels that convert a row's scales once and
// then read them as broadcasts or vectors. Only AVX-512 translation units
// include this.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/packed_matrix.h"

namespace lowbit {

// out[0:n] = the FP16 or BF16 codes sc[0:n] as floats; out holds n rounded up
// to 16 (the tail lanes get zeros). Full-width stores only: the kernels read
// single floats back at once, and a masked store cannot forward to those loads.
template <bool kBf16>
inline void scales_to_float(const uint16_t* sc, int64_t n, float* out) {
  for (int64_t i = 0; i < n; i += 16) {
    const int64_t m = std::min<int64_t>(16, n - i);
    const __mmask16 k = static_cast<__mmask16>((1u << m) - 1);
    const __m256i h = _mm256_maskz_loadu_epi16(k, sc + i);
    __m512 v;
    if constexpr (kBf16) {
      v = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    } else {
      v = _mm512_cvtph_ps(h);
    }
    _mm512_storeu_ps(out + i, v);
  }
}

// The FP32 group scales (times `factor`) and minimums of the two rows a grouped
// kernel runs together: [2][stride] scales then [2][stride] minimums, zeros past
// n_groups (stride >= n_groups rounded up to 16).
template <bool kBf16>
class RowPairScales {
 public:
  explicit RowPairScales(int64_t stride) : stride_(stride), buf_(static_cast<size_t>(4 * stride), 0.0f) {}
  void load(const PackedMatrix& w, const int64_t rows[2], float factor) {
    const int64_t ng = w.n_groups();
    for (int i = 0; i < 2; ++i) {
      float* s = scales(i);
      scales_to_float<kBf16>(w.scales.data() + rows[i] * ng, ng, s);
      if (factor != 1.0f) {
        for (int64_t g = 0; g < ng; g += 16) _mm512_storeu_ps(s + g, _mm512_mul_ps(_mm512_loadu_ps(s + g), _mm512_set1_ps(factor)));
      }
      if (w.asymmetric) scales_to_float<kBf16>(w.mins.data() + rows[i] * ng, ng, mins(i));
    }
  }
  float* scales(int i) { return buf_.data() + i * stride_; }
  float* mins(int i) { return buf_.data() + (2 + i) * stride_; }

 private:
  int64_t stride_;
  std::vector<float> buf_;
};

}  // namespace lowbit
