// AVX-512 kernels of the fused decode attention (kv_fused_attention.h). Codes
// are unpacked 16 at a time into a ZMM register, turned into floats and
// dequantized there (per-token: k = c · s + z by FMA; per-channel keys: the
// scale folded into the query, q_c s_c, and Σ q_c z_c added once), then used
// for every query head of the GQA group. Results differ from the reference
// only by FP32 rounding (FMA, summation order); the tests bound the difference.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/exp_rows.h"
#include "kvcache/kv_code_read.h"

namespace lowbit {
namespace {

constexpr int kHeads = 8;  // query heads whose accumulators are held at once

__mmask16 first_lanes(int n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1u);
}

float half_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// n <= 16 codes of `bits` <= 8 bits from bit `bit` of the stream as floats;
// lanes from n on are zero. Reads no byte after the last code's.
__m512 codes16(const uint8_t* stream, int64_t bit, int bits, int n) {
  const __mmask16 lanes = first_lanes(n);
  const uint8_t* p = stream + (bit >> 3);
  const int shift = static_cast<int>(bit & 7);
  if (shift == 0 && (bits == 8 || bits == 4 || bits == 2)) {
    const __m128i b = _mm_maskz_loadu_epi8(first_lanes((n * bits + 7) / 8), p);
    __m512i c;
    if (bits == 8) {
      c = _mm512_maskz_cvtepu8_epi32(lanes, b);
    } else if (bits == 4) {
      // Element 2i is the low nibble of byte i, element 2i + 1 the high one.
      const __m128i nib = _mm_set1_epi8(0x0F);
      const __m128i lo = _mm_and_si128(b, nib);
      const __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), nib);
      c = _mm512_maskz_cvtepu8_epi32(lanes, _mm_unpacklo_epi8(lo, hi));
    } else {
      // 16 codes of 2 bits are one 32-bit word: lane i shifts it by 2i.
      const __m512i word = _mm512_broadcastd_epi32(b);
      const __m512i by = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
      c = _mm512_maskz_and_epi32(lanes, _mm512_srlv_epi32(word, by), _mm512_set1_epi32(3));
    }
    return _mm512_cvtepi32_ps(c);
  }
  // Other widths and alignments: the bytes into a zero-padded buffer, one
  // 32-bit gather per lane at its code's byte, shifted down and masked.
  alignas(64) uint8_t buf[32] = {};
  std::memcpy(buf, p, static_cast<size_t>((shift + n * bits + 7) / 8));  // at most 17 bytes
  const __m512i at = _mm512_add_epi32(_mm512_set1_epi32(shift),
                                      _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
                                                                           13, 14, 15),
                                                         _mm512_set1_epi32(bits)));
  const __m512i words = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), lanes, _mm512_srli_epi32(at, 3), buf, 1);
  const __m512i c = _mm512_and_epi32(_mm512_srlv_epi32(words, _mm512_and_epi32(at, _mm512_set1_epi32(7))),
                                     _mm512_set1_epi32((1 << bits) - 1));
  return _mm512_cvtepi32_ps(c);
}

// Elements [e, e + n) of a per-token unit dequantized: c · s + z, lanes from n on zero.
__m512 dequantized16(const KvCodeLayout& l, const uint8_t* unit, int64_t e, int n) {
  const __mmask16 lanes = first_lanes(n);
  const __m512 c = codes16(unit, e * l.bits, l.bits, n);
  __m512 s, z;
  if (l.group % 16 == 0) {  // e is a multiple of 16: one group for all lanes
    const int64_t g = e / l.group;
    s = _mm512_set1_ps(half_at(unit + l.code_bytes + 2 * g));
    z = _mm512_set1_ps(half_at(unit + l.code_bytes + 2 * (l.n_groups + g)));
  } else {
    alignas(64) float sb[16] = {}, zb[16] = {};
    for (int i = 0; i < n; ++i) {
      const int64_t g = (e + i) / l.group;
      sb[i] = half_at(unit + l.code_bytes + 2 * g);
      zb[i] = half_at(unit + l.code_bytes + 2 * (l.n_groups + g));
    }
    s = _mm512_load_ps(sb);
    z = _mm512_load_ps(zb);
  }
  return _mm512_maskz_fmadd_ps(lanes, c, s, z);
}

void key_scores_rows_avx512(const KvCodeLayout& l, const uint8_t* units, int64_t n_rows, int kvh, const float* q,
                            int n_q, float scale, float* scores, int64_t ld) {
  const int hd = l.head_dim;
  for (int g0 = 0; g0 < n_q; g0 += kHeads) {
    const int nh = std::min(kHeads, n_q - g0);
    for (int64_t j = 0; j < n_rows; ++j) {
      const uint8_t* unit = units + j * l.unit_bytes;
      __m512 acc[kHeads];
      for (int h = 0; h < nh; ++h) acc[h] = _mm512_setzero_ps();
      for (int i = 0; i < hd; i += 16) {
        const int n = std::min(16, hd - i);
        const __m512 k = dequantized16(l, unit, static_cast<int64_t>(kvh) * hd + i, n);
        for (int h = 0; h < nh; ++h) {
          acc[h] = _mm512_fmadd_ps(k, _mm512_maskz_loadu_ps(first_lanes(n), q + (g0 + h) * hd + i), acc[h]);
        }
      }
      for (int h = 0; h < nh; ++h) scores[(g0 + h) * ld + j] = _mm512_reduce_add_ps(acc[h]) * scale;
    }
  }
}

// s_gt = scale · (Σ_c (q_gc s_c) code_ct + Σ_c q_gc z_c) for the T tokens of each unit, 16 tokens per register.
void key_scores_blocks_avx512(const KvCodeLayout& l, const uint8_t* units, int64_t n_units, int kvh, const float* q,
                              int n_q, float scale, float* scores, int64_t ld) {
  const int hd = l.head_dim, T = l.tokens_per_unit;
  for (int64_t u = 0; u < n_units; ++u) {
    const uint8_t* unit = units + u * l.unit_bytes;
    for (int g0 = 0; g0 < n_q; g0 += kHeads) {
      const int nh = std::min(kHeads, n_q - g0);
      for (int t0 = 0; t0 < T; t0 += 16) {
        const int n = std::min(16, T - t0);
        __m512 acc[kHeads];
        float zsum[kHeads] = {};
        for (int h = 0; h < nh; ++h) acc[h] = _mm512_setzero_ps();
        for (int i = 0; i < hd; ++i) {
          const int64_t c = static_cast<int64_t>(kvh) * hd + i;
          const float s = half_at(unit + l.code_bytes + 2 * c);
          const float z = half_at(unit + l.code_bytes + 2 * (l.n_groups + c));
          const __m512 codes = codes16(unit, (c * T + t0) * l.bits, l.bits, n);
          for (int h = 0; h < nh; ++h) {
            const float qc = q[(g0 + h) * hd + i];
            acc[h] = _mm512_fmadd_ps(_mm512_set1_ps(qc * s), codes, acc[h]);
            zsum[h] += qc * z;
          }
        }
        for (int h = 0; h < nh; ++h) {
          const __m512 r = _mm512_mul_ps(_mm512_add_ps(acc[h], _mm512_set1_ps(zsum[h])), _mm512_set1_ps(scale));
          _mm512_mask_storeu_ps(scores + (g0 + h) * ld + u * T + t0, first_lanes(n), r);
        }
      }
    }
  }
}

// out_g[i..i+16) += Σ_j p_gj v_j[i..i+16): the accumulators stay in registers over the rows.
void value_rows_avx512(const KvCodeLayout& l, const uint8_t* units, int64_t n_rows, int kvh, const float* p, int n_q,
                       int64_t ld, float* out) {
  const int hd = l.head_dim;
  for (int g0 = 0; g0 < n_q; g0 += kHeads) {
    const int nh = std::min(kHeads, n_q - g0);
    for (int i = 0; i < hd; i += 16) {
      const int n = std::min(16, hd - i);
      const __mmask16 lanes = first_lanes(n);
      __m512 acc[kHeads];
      for (int h = 0; h < nh; ++h) acc[h] = _mm512_maskz_loadu_ps(lanes, out + (g0 + h) * hd + i);
      for (int64_t j = 0; j < n_rows; ++j) {
        const __m512 v = dequantized16(l, units + j * l.unit_bytes, static_cast<int64_t>(kvh) * hd + i, n);
        for (int h = 0; h < nh; ++h) acc[h] = _mm512_fmadd_ps(_mm512_set1_ps(p[(g0 + h) * ld + j]), v, acc[h]);
      }
      for (int h = 0; h < nh; ++h) _mm512_mask_storeu_ps(out + (g0 + h) * hd + i, lanes, acc[h]);
    }
  }
}

void key_scores_f32_avx512(const float* rows, int64_t n_rows, int64_t stride, int hd, const float* q, int n_q,
                           float scale, float* scores, int64_t ld) {
  for (int64_t j = 0; j < n_rows; ++j) {
    const float* k = rows + j * stride;
    for (int g = 0; g < n_q; ++g) {
      __m512 acc = _mm512_setzero_ps();
      for (int i = 0; i < hd; i += 16) {
        const __mmask16 lanes = first_lanes(hd - i);
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(lanes, k + i), _mm512_maskz_loadu_ps(lanes, q + g * hd + i), acc);
      }
      scores[g * ld + j] = _mm512_reduce_add_ps(acc) * scale;
    }
  }
}

void value_f32_avx512(const float* rows, int64_t n_rows, int64_t stride, int hd, const float* p, int n_q, int64_t ld,
                      float* out) {
  for (int64_t j = 0; j < n_rows; ++j) {
    const float* v = rows + j * stride;
    for (int g = 0; g < n_q; ++g) {
      const __m512 pj = _mm512_set1_ps(p[g * ld + j]);
      for (int i = 0; i < hd; i += 16) {
        const __mmask16 lanes = first_lanes(hd - i);
        float* o = out + g * hd + i;
        const __m512 sum = _mm512_fmadd_ps(pj, _mm512_maskz_loadu_ps(lanes, v + i), _mm512_maskz_loadu_ps(lanes, o));
        _mm512_mask_storeu_ps(o, lanes, sum);
      }
    }
  }
}

}  // namespace

const FusedAttentionKernels& avx512_fused_attention_kernels() {
  static const FusedAttentionKernels k{"avx512", key_scores_rows_avx512, key_scores_blocks_avx512, value_rows_avx512,
                                       key_scores_f32_avx512, value_f32_avx512, exp_row_ops_avx512().softmax};
  return k;
}

}  // namespace lowbit
