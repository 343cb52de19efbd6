// kLut4 kernels with AVX2 + FMA + F16C (packed_matrix.h). A 32-column block's
// 16 code bytes are read as two halves of 8, each zero-extended to 8 x 32-bit
// lanes: byte j holds column j (low nibble) and column 16 + j (high nibble).
// The 16-entry table lives in two registers (entries 0..7 and 8..15); vpermps
// uses only the low 3 index bits, so each nibble is looked up in both halves and
// bit 3, shifted into the sign bit, picks one with vblendvps: no masking needed.
//
// Lanes: per group, four 8-lane sums (columns 0..7, 8..15, 16..23, 24..31 of each
// block) are scaled into two 8-lane accumulators, i.e. exactly the 16 logical
// lanes of the AVX-512 kernel, so the summation depth, and packed_gemv_bound,
// are the same.
#include <immintrin.h>

#include <algorithm>

#include "core/half.h"
#include "kernels/avx2_lanes.h"
#include "kernels/packed_matrix.h"
#include "kernels/scale_code_f16c.h"

namespace lowbit {
namespace {


// The 16-entry table as two 8-entry halves.
struct Lut {
  __m256 lo, hi;
  explicit Lut(const float* lut) : lo(_mm256_loadu_ps(lut)), hi(_mm256_loadu_ps(lut + 8)) {}
  // lut[code] for 8 codes in bits 0..3 of idx's lanes (bits above are ignored).
  __m256 low_nibble(__m256i idx) const {
    const __m256 sel = _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28));
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo, idx), _mm256_permutevar8x32_ps(hi, idx), sel);
  }
  // lut[code] for 8 codes in bits 4..7 of idx's lanes (a zero-extended byte).
  __m256 high_nibble(__m256i idx) const {
    const __m256i h = _mm256_srli_epi32(idx, 4);
    const __m256 sel = _mm256_castsi256_ps(_mm256_slli_epi32(idx, 24));
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo, h), _mm256_permutevar8x32_ps(hi, h), sel);
  }
};

// The 8 code bytes at p, one per 32-bit lane.
inline __m256i code_bytes(const uint8_t* p) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}

// acc[0..1] += sum over one row's blocks [b0, b1) of lut[code] * x, scaled by the group scales.
template <bool kBf16>
inline void row_group(const uint8_t* codes, const uint16_t* sc, const float* x, const Lut& lut, int64_t b0,
                      int64_t b1, int group, __m256 (&acc)[2]) {
  __m256 s[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  for (int64_t b = b0; b < b1; ++b) {
    const __m256i qa = code_bytes(codes + 16 * b), qb = code_bytes(codes + 16 * b + 8);
    const float* xb = x + 32 * b;
    s[0] = _mm256_fmadd_ps(lut.low_nibble(qa), _mm256_loadu_ps(xb), s[0]);
    s[1] = _mm256_fmadd_ps(lut.low_nibble(qb), _mm256_loadu_ps(xb + 8), s[1]);
    s[2] = _mm256_fmadd_ps(lut.high_nibble(qa), _mm256_loadu_ps(xb + 16), s[2]);
    s[3] = _mm256_fmadd_ps(lut.high_nibble(qb), _mm256_loadu_ps(xb + 24), s[3]);
  }
  // Groups of 16 split a 32-column block: the high half belongs to the next group.
  const int64_t g_lo = 32 * b0 / group, g_hi = (32 * b0 + 16) / group;
  const __m256 s_lo = _mm256_set1_ps(scale16<kBf16>(sc[g_lo])), s_hi = _mm256_set1_ps(scale16<kBf16>(sc[g_hi]));
  acc[0] = _mm256_fmadd_ps(s[0], s_lo, acc[0]);
  acc[1] = _mm256_fmadd_ps(s[1], s_lo, acc[1]);
  acc[0] = _mm256_fmadd_ps(s[2], s_hi, acc[0]);
  acc[1] = _mm256_fmadd_ps(s[3], s_hi, acc[1]);
}

template <bool kBf16>
void gemv_t(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  const int64_t nb = w.cols_padded / 32, ng = w.n_groups(), rb = w.row_bytes();
  const int64_t step = std::max<int64_t>(1, w.group / 32);  // blocks per group
  const Lut lut(w.lut);
  const float* x = a.x.data();
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* codes = w.codes.data() + r * rb;
    const uint16_t* sc = w.scales.data() + r * ng;
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t b0 = 0; b0 < nb; b0 += step) row_group<kBf16>(codes, sc, x, lut, b0, std::min(nb, b0 + step), w.group, acc);
    float sum = avx2::hsum(_mm256_add_ps(acc[0], acc[1]));
    if (w.asymmetric) {
      const uint16_t* mn = w.mins.data() + r * ng;
      for (int64_t g = 0; g < ng; ++g) sum += scale16<kBf16>(mn[g]) * a.xsum[g];
    }
    y[r - r0] = sum * w.tensor_scale;
  }
}

void gemv(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  if (w.bf16_scales) {
    gemv_t<true>(w, a, r0, r1, y);
  } else {
    gemv_t<false>(w, a, r0, r1, y);
  }
}

// Values in the reference's order: (lut * s + m) * tensor_scale, each step rounded.
template <bool kBf16>
void dequantize_t(const PackedMatrix& w, int64_t r0, int64_t r1, float* out) {
  const int64_t nb = w.cols_padded / 32, ng = w.n_groups(), rb = w.row_bytes();
  const Lut lut(w.lut);
  const __m256 ts = _mm256_set1_ps(w.tensor_scale);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* codes = w.codes.data() + r * rb;
    const uint16_t* sc = w.scales.data() + r * ng;
    const uint16_t* mn = w.asymmetric ? w.mins.data() + r * ng : nullptr;
    float* o = out + (r - r0) * w.cols;
    for (int64_t b = 0; b < nb && 32 * b < w.cols; ++b) {
      const __m256i qa = code_bytes(codes + 16 * b), qb = code_bytes(codes + 16 * b + 8);
      const __m256 v[4] = {lut.low_nibble(qa), lut.low_nibble(qb), lut.high_nibble(qa), lut.high_nibble(qb)};
      for (int k = 0; k < 4; ++k) {
        const int64_t c = 32 * b + 8 * k;
        if (c >= w.cols) break;
        const int64_t g = c / w.group;
        __m256 e = _mm256_mul_ps(v[k], _mm256_set1_ps(scale16<kBf16>(sc[g])));
        if (mn != nullptr) e = _mm256_add_ps(e, _mm256_set1_ps(scale16<kBf16>(mn[g])));
        avx2::store_first(o + c, _mm256_mul_ps(e, ts), w.cols - c);
      }
    }
  }
}

void dequantize_rows(const PackedMatrix& w, int64_t r0, int64_t r1, float* out) {
  if (w.bf16_scales) {
    dequantize_t<true>(w, r0, r1, out);
  } else {
    dequantize_t<false>(w, r0, r1, out);
  }
}

}  // namespace

PackedKernels packed_kernels_lut4_avx2() { return {gemv, dequantize_rows, Isa::kAvx2}; }

}  // namespace lowbit
