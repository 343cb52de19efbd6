// kBits kernels with AVX2 + FMA + F16C (packed_matrix.h). Half h of a 32-column
// block keeps its 16 low code pairs in one 32-bit word: broadcast to 8 lanes and
// shifted right by 2i (vpsrlvd) for columns i = 0..7, by 16 + 2i for 8..15,
// masked to two bits; 3-bit codes OR in 4 where bit i of the half's 16-bit
// third-bit word is set (a per-lane bit test). The table has at most 8 entries,
// so one vpermps looks the codes up.
//
// Lanes: per group, four 8-lane sums (columns 0..7, 8..15, 16..23, 24..31 of each
// block) are scaled into two 8-lane accumulators, the 16 logical lanes of the
// AVX-512 kernel, as in lut4/avx2: the same summation depth and packed_gemv_bound.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "core/half.h"
#include "kernels/avx2_lanes.h"
#include "kernels/packed_matrix.h"
#include "kernels/scale_code_f16c.h"

namespace lowbit {
namespace {

// The table indices of one 32-column block, 8 columns (a quarter) at a time:
// quarter q = 0..3 holds columns 8q .. 8q + 7, i.e. half q / 2, its columns
// 8 (q % 2) .. 8 (q % 2) + 7. The words are read once per block.
template <bool kThree>
struct BlockCodes {
  __m256i lo[2];  // each half's 32-bit word of low code pairs, broadcast
  __m256i hi[2];  // 3-bit: each half's 16-bit third-bit word, broadcast
  explicit BlockCodes(const uint8_t* block) {
    for (int h = 0; h < 2; ++h) {
      uint32_t word;
      std::memcpy(&word, block + 4 * h, 4);
      lo[h] = _mm256_set1_epi32(static_cast<int>(word));
      if constexpr (kThree) {
        uint16_t third;
        std::memcpy(&third, block + 8 + 2 * h, 2);
        hi[h] = _mm256_set1_epi32(third);
      }
    }
  }
  __m256i quarter(int q) const {
    // Column i of the half: low pair at bits 2i, third bit at bit i.
    const __m256i shifts = q % 2 == 0 ? _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14)
                                      : _mm256_setr_epi32(16, 18, 20, 22, 24, 26, 28, 30);
    __m256i v = _mm256_and_si256(_mm256_srlv_epi32(lo[q / 2], shifts), _mm256_set1_epi32(3));
    if constexpr (kThree) {
      const __m256i bit = q % 2 == 0 ? _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128)
                                     : _mm256_setr_epi32(256, 512, 1024, 2048, 4096, 8192, 16384, 32768);
      const __m256i set = _mm256_cmpeq_epi32(_mm256_and_si256(hi[q / 2], bit), bit);
      v = _mm256_or_si256(v, _mm256_and_si256(set, _mm256_set1_epi32(4)));
    }
    return v;
  }
};

template <bool kBf16, bool kThree>
void gemv_t(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  const int64_t nb = w.cols_padded / 32, ng = w.n_groups(), rb = w.row_bytes(), bb = kThree ? 12 : 8;
  const int64_t step = std::max<int64_t>(1, w.group / 32);  // blocks per group
  const __m256 lut = _mm256_loadu_ps(w.lut);                 // entries 0..7 (a 2-bit table uses 0..3)
  const float* x = a.x.data();
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* codes = w.codes.data() + r * rb;
    const uint16_t* sc = w.scales.data() + r * ng;
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t b0 = 0; b0 < nb; b0 += step) {
      const int64_t b1 = std::min(nb, b0 + step);
      __m256 s[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
      for (int64_t b = b0; b < b1; ++b) {
        const BlockCodes<kThree> block(codes + bb * b);
        for (int q = 0; q < 4; ++q) {
          s[q] = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(lut, block.quarter(q)), _mm256_loadu_ps(x + 32 * b + 8 * q),
                                 s[q]);
        }
      }
      // Groups of 16 split a 32-column block: the high half belongs to the next group.
      const int64_t g_lo = 32 * b0 / w.group, g_hi = (32 * b0 + 16) / w.group;
      const __m256 s_lo = _mm256_set1_ps(scale16<kBf16>(sc[g_lo])), s_hi = _mm256_set1_ps(scale16<kBf16>(sc[g_hi]));
      acc[0] = _mm256_fmadd_ps(s[0], s_lo, acc[0]);
      acc[1] = _mm256_fmadd_ps(s[1], s_lo, acc[1]);
      acc[0] = _mm256_fmadd_ps(s[2], s_hi, acc[0]);
      acc[1] = _mm256_fmadd_ps(s[3], s_hi, acc[1]);
    }
    float sum = avx2::hsum(_mm256_add_ps(acc[0], acc[1]));
    if (w.asymmetric) {
      const uint16_t* mn = w.mins.data() + r * ng;
      for (int64_t g = 0; g < ng; ++g) sum += scale16<kBf16>(mn[g]) * a.xsum[g];
    }
    y[r - r0] = sum * w.tensor_scale;
  }
}

// Values in the reference's order: (lut * s + m) * tensor_scale, each step rounded.
template <bool kBf16, bool kThree>
void dequantize_t(const PackedMatrix& w, int64_t r0, int64_t r1, float* out) {
  const int64_t nb = w.cols_padded / 32, ng = w.n_groups(), rb = w.row_bytes(), bb = kThree ? 12 : 8;
  const __m256 lut = _mm256_loadu_ps(w.lut);
  const __m256 ts = _mm256_set1_ps(w.tensor_scale);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* codes = w.codes.data() + r * rb;
    const uint16_t* sc = w.scales.data() + r * ng;
    const uint16_t* mn = w.asymmetric ? w.mins.data() + r * ng : nullptr;
    float* o = out + (r - r0) * w.cols;
    for (int64_t b = 0; b < nb && 32 * b < w.cols; ++b) {
      const BlockCodes<kThree> block(codes + bb * b);
      for (int q = 0; q < 4; ++q) {
        const int64_t c = 32 * b + 8 * q;
        if (c >= w.cols) break;
        const int64_t g = c / w.group;
        __m256 e = _mm256_mul_ps(_mm256_permutevar8x32_ps(lut, block.quarter(q)),
                                 _mm256_set1_ps(scale16<kBf16>(sc[g])));
        if (mn != nullptr) e = _mm256_add_ps(e, _mm256_set1_ps(scale16<kBf16>(mn[g])));
        avx2::store_first(o + c, _mm256_mul_ps(e, ts), w.cols - c);
      }
    }
  }
}

void gemv(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  if (w.code_bits == 3) {
    w.bf16_scales ? gemv_t<true, true>(w, a, r0, r1, y) : gemv_t<false, true>(w, a, r0, r1, y);
  } else {
    w.bf16_scales ? gemv_t<true, false>(w, a, r0, r1, y) : gemv_t<false, false>(w, a, r0, r1, y);
  }
}

void dequantize_rows(const PackedMatrix& w, int64_t r0, int64_t r1, float* out) {
  if (w.code_bits == 3) {
    w.bf16_scales ? dequantize_t<true, true>(w, r0, r1, out) : dequantize_t<false, true>(w, r0, r1, out);
  } else {
    w.bf16_scales ? dequantize_t<true, false>(w, r0, r1, out) : dequantize_t<false, false>(w, r0, r1, out);
  }
}

}  // namespace

PackedKernels packed_kernels_bits_avx2() { return {gemv, dequantize_rows, Isa::kAvx2}; }

}  // namespace lowbit
