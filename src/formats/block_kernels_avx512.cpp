// AVX-512 block kernels (see block_kernels.h), bit for bit equal to the scalar
// ones: max and min are exact in any order, the affine map is one IEEE division
// (or subtraction + division) and one clamp per value, as in the scalar loop, and
// VMAXPS/VMINPS are ordered so that their tie and signed-zero behaviour is the
// scalar `y < lo ? lo : (y > hi ? hi : y)`. Packing uses BMI2: PEXT gathers the
// low b bits of 8 code bytes into one 8b-bit chunk (8 codes of b bits are b whole
// bytes of the LSB-first stream), PDEP spreads them back.
// GCC 12 reports the _mm512_undefined_* operands inside its own intrinsics as
// "may be used uninitialized" (GCC PR 105593) once BMI2 target attributes are in
// the file; the values are never read.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "formats/block_kernels.h"

namespace lowbit {
namespace {

inline __mmask16 tail_mask(int64_t remaining) {
  return remaining >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << remaining) - 1u);
}

bool group_abs_max_avx512(const float* x, int64_t n, int64_t group, float* amax) {
  const __m512 inf = _mm512_set1_ps(__builtin_inff());
  __mmask16 bad = 0;
  for (int64_t g0 = 0, g = 0; g0 < n; g0 += group, ++g) {
    const int64_t len = std::min(group, n - g0);
    const float* p = x + g0;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= len; i += 32) {
      const __m512 a = _mm512_abs_ps(_mm512_loadu_ps(p + i));
      const __m512 b = _mm512_abs_ps(_mm512_loadu_ps(p + i + 16));
      bad |= _mm512_cmp_ps_mask(a, inf, _CMP_NLT_UQ) | _mm512_cmp_ps_mask(b, inf, _CMP_NLT_UQ);
      acc0 = _mm512_max_ps(acc0, a);
      acc1 = _mm512_max_ps(acc1, b);
    }
    for (; i < len; i += 16) {
      const __m512 a = _mm512_abs_ps(_mm512_maskz_loadu_ps(tail_mask(len - i), p + i));
      bad |= _mm512_cmp_ps_mask(a, inf, _CMP_NLT_UQ);
      acc0 = _mm512_max_ps(acc0, a);
    }
    amax[g] = _mm512_reduce_max_ps(_mm512_max_ps(acc0, acc1));
  }
  return bad == 0;
}

bool group_min_max_avx512(const float* x, int64_t n, int64_t group, float* mn, float* mx) {
  const __m512 inf = _mm512_set1_ps(__builtin_inff());
  __mmask16 bad = 0;
  for (int64_t g0 = 0, g = 0; g0 < n; g0 += group, ++g) {
    const int64_t len = std::min(group, n - g0);
    const float* p = x + g0;
    __m512 lo = _mm512_set1_ps(p[0]), hi = lo;
    for (int64_t i = 0; i < len; i += 16) {
      const __mmask16 k = tail_mask(len - i);
      const __m512 v = _mm512_maskz_loadu_ps(k, p + i);
      bad |= _mm512_mask_cmp_ps_mask(k, _mm512_abs_ps(v), inf, _CMP_NLT_UQ);
      lo = _mm512_mask_min_ps(lo, k, lo, v);
      hi = _mm512_mask_max_ps(hi, k, hi, v);
    }
    mn[g] = _mm512_reduce_min_ps(lo);
    mx[g] = _mm512_reduce_max_ps(hi);
  }
  return bad == 0;
}

template <bool kAsymmetric>
void to_element_groups(const float* x, int64_t n, int64_t group, const GroupMaps& m, float* y) {
  const __m512 vlo = _mm512_set1_ps(m.lo), vhi = _mm512_set1_ps(m.hi);
  for (int64_t g0 = 0, g = 0; g0 < n; g0 += group, ++g) {
    const int64_t len = std::min(group, n - g0);
    const float s = m.scale[g];
    if (s == 0.0f) {
      std::fill(y + g0, y + g0 + len, 0.0f);
      continue;
    }
    const __m512 vs = _mm512_set1_ps(s);
    const __m512 vo = _mm512_set1_ps(kAsymmetric ? m.offset[g] : 0.0f);
    for (int64_t i = 0; i < len; i += 16) {
      const __mmask16 k = tail_mask(len - i);
      __m512 v = _mm512_maskz_loadu_ps(k, x + g0 + i);
      if (kAsymmetric) v = _mm512_sub_ps(v, vo);
      __m512 q = _mm512_div_ps(v, vs);
      q = _mm512_max_ps(vlo, q);  // lo > q ? lo : q, i.e. q < lo ? lo : q
      q = _mm512_min_ps(vhi, q);  // hi < q ? hi : q, i.e. q > hi ? hi : q
      _mm512_mask_storeu_ps(y + g0 + i, k, q);
    }
  }
}

void to_element_avx512(const float* x, int64_t n, int64_t group, const GroupMaps& m, float* y) {
  if (m.asymmetric) {
    to_element_groups<true>(x, n, group, m, y);
  } else {
    to_element_groups<false>(x, n, group, m, y);
  }
}

template <bool kAsymmetric>
void from_element_groups(const float* v, int64_t n, int64_t group, const GroupMaps& m, float* out) {
  for (int64_t g0 = 0, g = 0; g0 < n; g0 += group, ++g) {
    const int64_t len = std::min(group, n - g0);
    const __m512 vs = _mm512_set1_ps(m.scale[g]);
    const __m512 vo = _mm512_set1_ps(kAsymmetric ? m.offset[g] : 0.0f);
    for (int64_t i = 0; i < len; i += 16) {
      const __mmask16 k = tail_mask(len - i);
      __m512 q = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, v + g0 + i), vs);
      if (kAsymmetric) q = _mm512_add_ps(q, vo);
      _mm512_mask_storeu_ps(out + g0 + i, k, q);
    }
  }
}

void from_element_avx512(const float* v, int64_t n, int64_t group, const GroupMaps& m, float* out) {
  if (m.asymmetric) {
    from_element_groups<true>(v, n, group, m, out);
  } else {
    from_element_groups<false>(v, n, group, m, out);
  }
}

// 8-byte little-endian load and store; callers keep them inside the row.
inline uint64_t load_u64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline void store_u64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }

__attribute__((target("bmi2"))) void pack_avx512(const uint16_t* codes, int64_t n, int bits, uint8_t* dst) {
  int64_t i = 0;
  uint8_t* out = dst;
  if (bits == 16) {
    std::memcpy(dst, codes, static_cast<size_t>(n) * 2);  // little-endian
    return;
  }
  if (bits == 8) {
    for (; i + 32 <= n; i += 32, out += 32) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm512_cvtepi16_epi8(_mm512_loadu_si512(codes + i)));
    }
  } else if (bits < 8) {
    // Each 8-code chunk is stored as 8 bytes of which the top 8 - bits are zero and
    // overwritten by the next chunk; so stop while 8 bytes still fit in the row.
    const uint8_t* end = dst + (n * bits + 7) / 8;
    const uint64_t mask = 0x0101010101010101ull * ((1u << bits) - 1u);
    for (; i + 32 <= n && out + 4 * bits + 8 <= end; i += 32) {
      const __m256i bytes = _mm512_cvtepi16_epi8(_mm512_loadu_si512(codes + i));
      const __m128i lo = _mm256_castsi256_si128(bytes), hi = _mm256_extracti128_si256(bytes, 1);
      store_u64(out, _pext_u64(static_cast<uint64_t>(_mm_cvtsi128_si64(lo)), mask));
      store_u64(out + bits, _pext_u64(static_cast<uint64_t>(_mm_extract_epi64(lo, 1)), mask));
      store_u64(out + 2 * bits, _pext_u64(static_cast<uint64_t>(_mm_cvtsi128_si64(hi)), mask));
      store_u64(out + 3 * bits, _pext_u64(static_cast<uint64_t>(_mm_extract_epi64(hi, 1)), mask));
      out += 4 * bits;
    }
  }
  // The tail (and 9..15-bit codes) starts on a byte boundary: 32 codes are 4 * bits bytes.
  scalar_scale_kernels().pack(codes + i, n - i, bits, out);
}

__attribute__((target("bmi2"))) void unpack_avx512(const uint8_t* src, int64_t n, int bits, uint16_t* codes) {
  int64_t i = 0;
  const uint8_t* in = src;
  if (bits == 16) {
    std::memcpy(codes, src, static_cast<size_t>(n) * 2);
    return;
  }
  if (bits == 8) {
    for (; i + 32 <= n; i += 32, in += 32) {
      _mm512_storeu_si512(codes + i,
                          _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(in))));
    }
  } else if (bits < 8) {
    // 8-byte loads of which the low `bits` bytes are the chunk: stop while they fit in the row.
    const uint8_t* end = src + (n * bits + 7) / 8;
    const uint64_t mask = 0x0101010101010101ull * ((1u << bits) - 1u);
    for (; i + 32 <= n && in + 3 * bits + 8 <= end; i += 32) {
      const __m256i bytes = _mm256_set_epi64x(
          static_cast<long long>(_pdep_u64(load_u64(in + 3 * bits), mask)),
          static_cast<long long>(_pdep_u64(load_u64(in + 2 * bits), mask)),
          static_cast<long long>(_pdep_u64(load_u64(in + bits), mask)),
          static_cast<long long>(_pdep_u64(load_u64(in), mask)));
      _mm512_storeu_si512(codes + i, _mm512_cvtepu8_epi16(bytes));
      in += 4 * bits;
    }
  }
  scalar_scale_kernels().unpack(in, n - i, bits, codes + i);
}

}  // namespace

const ScaleKernels& avx512_scale_kernels() {
  static const ScaleKernels k{"avx512",         group_abs_max_avx512, group_min_max_avx512, to_element_avx512,
                              from_element_avx512, pack_avx512,          unpack_avx512};
  return k;
}

}  // namespace lowbit
