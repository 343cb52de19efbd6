// AVX-512 (F/BW/VL/DQ) element encode/decode, 16 elements per step, tails by
// masked loads and stores. Each method is the vector form of the scalar one in
// element_kernel.cpp / element_kernel_data.h and is tested bit for bit against
// the reference codecs.
// GCC 12's AVX-512 headers trip -Wuninitialized on their own _mm512_undefined_*
// (GCC bug 105593, fixed in GCC 13).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <climits>

#include "formats/element_kernel_data.h"

namespace lowbit::avx512 {
namespace {

__mmask16 tail_mask(size_t remaining) {
  return remaining >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << remaining) - 1u);
}

// --- encode: 16 floats -> 16 int32 codes -------------------------------------

__m512i encode_minifloat(const MinifloatFast& p, __m512 x) {
  const __m512i u = _mm512_castps_si512(x);
  const __m512i a = _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff));
  // Normal range: RNE on the float bits, then rebase the exponent.
  const __m128i shift = _mm_cvtsi32_si128(p.shift);
  const __m512i lsb = _mm512_and_si512(_mm512_srl_epi32(a, shift), _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_add_epi32(_mm512_add_epi32(a, _mm512_set1_epi32(static_cast<int>(p.round_bias))), lsb);
  const __m512i normal = _mm512_sub_epi32(_mm512_srl_epi32(rounded, shift),
                                          _mm512_set1_epi32(static_cast<int>(p.rebias)));
  // Subnormal range: the FPU rounds |x| + 2^(emin - M + 23) to the subnormal spacing.
  const __m512 sum = _mm512_add_ps(_mm512_castsi512_ps(a), _mm512_set1_ps(p.subnormal_magic));
  const __m512i sub = _mm512_sub_epi32(_mm512_castps_si512(sum), _mm512_set1_epi32(static_cast<int>(p.magic_bits)));
  const __mmask16 is_normal = _mm512_cmpge_epu32_mask(a, _mm512_set1_epi32(static_cast<int>(p.min_normal_bits)));
  __m512i mag = _mm512_mask_blend_epi32(is_normal, sub, normal);
  const __mmask16 over = _mm512_cmpgt_epu32_mask(mag, _mm512_set1_epi32(static_cast<int>(p.max_mag)));
  mag = _mm512_mask_blend_epi32(over, mag, _mm512_set1_epi32(static_cast<int>(p.overflow_code)));
  const __mmask16 negative = _mm512_movepi32_mask(u);
  const __m512i signed_code = p.has_sign ? _mm512_or_si512(mag, _mm512_set1_epi32(static_cast<int>(p.sign_bit)))
                                         : _mm512_setzero_si512();
  __m512i code = _mm512_mask_blend_epi32(negative, mag, signed_code);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(a, _mm512_set1_epi32(0x7f800000));
  return _mm512_mask_blend_epi32(nan, code, _mm512_set1_epi32(static_cast<int>(p.nan_code)));
}

__m512i encode_integer(const IntFast& p, __m512 x) {
  const __m512 r = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // max/min return their second operand when the first is NaN: NaN becomes lo,
  // then is replaced by 0 below.
  const __m512 clamped = _mm512_min_ps(_mm512_max_ps(r, _mm512_set1_ps(p.lo)), _mm512_set1_ps(p.hi));
  const __mmask16 ordered = _mm512_cmp_ps_mask(x, x, _CMP_ORD_Q);
  const __m512i v = _mm512_maskz_cvtps_epi32(ordered, clamped);
  return _mm512_and_si512(v, _mm512_set1_epi32(static_cast<int>(p.mask)));
}

// Ordered int32 keys (element_kernel_data.h): negative floats get their
// magnitude bits flipped.
__m512i ordered_keys(__m512 x) {
  const __m512i s = _mm512_castps_si512(x);
  return _mm512_xor_si512(s, _mm512_srli_epi32(_mm512_srai_epi32(s, 31), 1));
}

__m512i nan_to(__m512 x, __m512i code, uint32_t nan_code) {
  const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  return _mm512_mask_blend_epi32(nan, code, _mm512_set1_epi32(static_cast<int>(nan_code)));
}

// Branchless search among the bounds of a table of at most 16 entries, held in
// registers.
struct SmallThresholds {
  explicit SmallThresholds(const ThresholdTable& t) : size(t.size), nan_code(t.nan_code) {
    alignas(64) int32_t b[16];
    alignas(64) int32_t c[16];
    for (int i = 0; i < 16; ++i) {
      b[i] = i < t.size - 1 ? t.bounds[i] : INT32_MAX;
      c[i] = i < t.size ? t.codes[i] : 0;
    }
    bounds = _mm512_load_si512(b);
    codes = _mm512_load_si512(c);
  }
  __m512i operator()(__m512 x) const {
    const __m512i key = ordered_keys(x);
    __m512i pos = _mm512_setzero_si512();
    for (int step = size / 2; step > 0; step /= 2) {
      const __m512i probe = _mm512_add_epi32(pos, _mm512_set1_epi32(step - 1));
      const __mmask16 le = _mm512_cmple_epi32_mask(_mm512_permutexvar_epi32(probe, bounds), key);
      pos = _mm512_mask_add_epi32(pos, le, pos, _mm512_set1_epi32(step));
    }
    return nan_to(x, _mm512_permutexvar_epi32(pos, codes), nan_code);
  }
  int size;
  uint32_t nan_code;
  __m512i bounds;
  __m512i codes;
};

// The same search with gathers for larger tables.
__m512i encode_thresholds(const ThresholdTable& t, __m512 x) {
  const __m512i key = ordered_keys(x);
  __m512i pos = _mm512_setzero_si512();
  for (int step = t.size / 2; step > 0; step /= 2) {
    const __m512i probe = _mm512_add_epi32(pos, _mm512_set1_epi32(step - 1));
    const __mmask16 le = _mm512_cmple_epi32_mask(_mm512_i32gather_epi32(probe, t.bounds.data(), 4), key);
    pos = _mm512_mask_add_epi32(pos, le, pos, _mm512_set1_epi32(step));
  }
  return nan_to(x, _mm512_i32gather_epi32(pos, t.codes.data(), 4), t.nan_code);
}

void store_codes(uint8_t* out, __mmask16 m, __m512i codes) { _mm512_mask_cvtepi32_storeu_epi8(out, m, codes); }
void store_codes(uint16_t* out, __mmask16 m, __m512i codes) { _mm512_mask_cvtepi32_storeu_epi16(out, m, codes); }

template <typename Code, typename Fn>
void encode_loop(const float* x, Code* codes, size_t n, Fn&& fn) {
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    store_codes(codes + i, m, fn(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

template <typename Code>
void encode_any(const ElementKernelData& d, const float* x, Code* codes, size_t n) {
  switch (d.method) {
    case EncodeMethod::kMinifloat: {
      const MinifloatFast& p = d.minifloat;
      encode_loop(x, codes, n, [&p](__m512 v) { return encode_minifloat(p, v); });
      break;
    }
    case EncodeMethod::kInteger: {
      const IntFast& p = d.integer;
      encode_loop(x, codes, n, [&p](__m512 v) { return encode_integer(p, v); });
      break;
    }
    case EncodeMethod::kThresholds: {
      const ThresholdTable& t = d.thresholds;
      if (t.size <= 16) {
        const SmallThresholds small(t);
        encode_loop(x, codes, n, small);
      } else {
        encode_loop(x, codes, n, [&t](__m512 v) { return encode_thresholds(t, v); });
      }
      break;
    }
    case EncodeMethod::kReference:
      break;  // the dispatcher runs the reference instead
  }
}

// --- decode: 16 codes -> 16 floats by table --------------------------------

__m512i load_codes(const uint8_t* in, __mmask16 m) { return _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, in)); }
__m512i load_codes(const uint16_t* in, __mmask16 m) { return _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, in)); }

template <typename Code>
void decode_any(const ElementKernelData& d, const Code* codes, float* y, size_t n) {
  const uint32_t count = num_codes(d.format);
  const __m512i mask = _mm512_set1_epi32(static_cast<int>(count - 1u));
  const float* table = d.decode_table.data();
  if (count <= 32) {
    alignas(64) float lut[32] = {};
    for (uint32_t c = 0; c < count; ++c) lut[c] = table[c];
    const __m512 lo = _mm512_load_ps(lut);
    const __m512 hi = _mm512_load_ps(lut + 16);
    for (size_t i = 0; i < n; i += 16) {
      const __mmask16 m = tail_mask(n - i);
      const __m512i idx = _mm512_and_si512(load_codes(codes + i, m), mask);
      _mm512_mask_storeu_ps(y + i, m, _mm512_permutex2var_ps(lo, idx, hi));
    }
    return;
  }
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512i idx = _mm512_and_si512(load_codes(codes + i, m), mask);
    _mm512_mask_storeu_ps(y + i, m, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, table, 4));
  }
}

}  // namespace

void encode(const ElementKernelData& d, const float* x, uint8_t* codes, size_t n) { encode_any(d, x, codes, n); }
void encode(const ElementKernelData& d, const float* x, uint16_t* codes, size_t n) { encode_any(d, x, codes, n); }
void decode(const ElementKernelData& d, const uint8_t* codes, float* y, size_t n) { decode_any(d, codes, y, n); }
void decode(const ElementKernelData& d, const uint16_t* codes, float* y, size_t n) { decode_any(d, codes, y, n); }

}  // namespace lowbit::avx512
