// AVX2 + FMA + F16C kernels of the fused decode attention (kv_fused_attention.h),
// the AVX-512 kernels' method in 8 lanes: codes unpacked 8 at a time into a YMM
// register, turned into floats and dequantized there (per-token: k = c · s + z
// by FMA; per-channel keys: the scale folded into the query, q_c s_c, and
// Σ q_c z_c added once), then used for every query head of the GQA group.
// Results differ from the reference only by FP32 rounding (FMA, summation
// order); the tests bound the difference.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/avx2_lanes.h"
#include "kernels/exp_rows.h"
#include "kvcache/kv_code_read.h"

namespace lowbit {
namespace {

constexpr int kHeads = 8;  // query heads whose accumulators are held at once

// All-ones in lanes [0, n), n in [0, 8].
__m256i lane_mask(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// x[0:n] in lanes [0, n), zeros after; reads no element from n on.
__m256 load_first(const float* x, int n) {
  return n >= 8 ? _mm256_loadu_ps(x) : _mm256_maskload_ps(x, lane_mask(n));
}

float half_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// n <= 8 codes of `bits` <= 8 bits from bit `bit` of the stream as floats;
// lanes from n on are zero. Reads no byte after the last code's.
__m256 codes8(const uint8_t* stream, int64_t bit, int bits, int n) {
  const uint8_t* p = stream + (bit >> 3);
  const int shift = static_cast<int>(bit & 7);
  // The bytes holding the codes, zero-padded: at most (7 + 8 · 8 + 7) / 8 = 9 bytes,
  // but the 64-bit read below covers 8: shift + n · bits <= 7 + 56 only for bits <= 7.
  if (shift == 0 && n == 8 && (bits == 8 || bits == 4 || bits == 2)) {  // whole aligned bytes: no copy
    if (bits == 8) return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
    // 4 bits: one 32-bit word, element i at bits 4i (low nibble first); 2 bits: a 16-bit word, at bits 2i.
    uint32_t word = 0;
    std::memcpy(&word, p, static_cast<size_t>(bits));  // 8 codes: 4 or 2 bytes
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i by = _mm256_mullo_epi32(lane, _mm256_set1_epi32(bits));
    const __m256i c = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(word)), by),
                                       _mm256_set1_epi32((1 << bits) - 1));
    return _mm256_cvtepi32_ps(c);
  }
  // Other widths, alignments and short runs: the bytes holding the codes,
  // zero-padded: at most (7 + 8 · 8 + 7) / 8 = 9.
  const int n_bytes = (shift + n * bits + 7) / 8;
  uint8_t buf[16] = {};
  std::memcpy(buf, p, static_cast<size_t>(n_bytes));
  uint64_t word, next;
  std::memcpy(&word, buf, 8);
  std::memcpy(&next, buf + 8, 8);
  __m256i c;
  if (bits == 8) {
    if (shift != 0) word = (word >> shift) | (next << (64 - shift));  // byte-misaligned: 8 bytes shifted into place
    c = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<long long>(word)));
  } else {
    // Code i at bit shift + i · bits <= 7 + 7 · 7 = 56 of the 64-bit word, all of
    // it below bit 64: one variable 64-bit shift per code, low 32 bits kept.
    const __m256i w = _mm256_set1_epi64x(static_cast<long long>(word));
    const __m256i at0 = _mm256_setr_epi64x(shift, shift + bits, shift + 2 * bits, shift + 3 * bits);
    const __m256i at1 = _mm256_add_epi64(at0, _mm256_set1_epi64x(4 * bits));
    const __m256i even = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    const __m256i lo = _mm256_permutevar8x32_epi32(_mm256_srlv_epi64(w, at0), even);
    const __m256i hi = _mm256_permutevar8x32_epi32(_mm256_srlv_epi64(w, at1), even);
    c = _mm256_and_si256(_mm256_blend_epi32(lo, hi, 0xF0), _mm256_set1_epi32((1 << bits) - 1));
  }
  c = _mm256_and_si256(c, lane_mask(n));
  return _mm256_cvtepi32_ps(c);
}

// Elements [e, e + n) of a per-token unit dequantized: c · s + z, lanes from n on zero.
__m256 dequantized8(const KvCodeLayout& l, const uint8_t* unit, int64_t e, int n) {
  const __m256 c = codes8(unit, e * l.bits, l.bits, n);
  __m256 s, z;
  if (l.group % 8 == 0) {  // e is a multiple of 8: one group for all lanes
    const int64_t g = e / l.group;
    s = _mm256_set1_ps(half_at(unit + l.code_bytes + 2 * g));
    z = _mm256_set1_ps(half_at(unit + l.code_bytes + 2 * (l.n_groups + g)));
  } else {
    alignas(32) float sb[8] = {}, zb[8] = {};
    for (int i = 0; i < n; ++i) {
      const int64_t g = (e + i) / l.group;
      sb[i] = half_at(unit + l.code_bytes + 2 * g);
      zb[i] = half_at(unit + l.code_bytes + 2 * (l.n_groups + g));
    }
    s = _mm256_load_ps(sb);
    z = _mm256_load_ps(zb);
  }
  const __m256 v = _mm256_fmadd_ps(c, s, z);
  return n >= 8 ? v : _mm256_and_ps(v, _mm256_castsi256_ps(lane_mask(n)));
}

void key_scores_rows_avx2(const KvCodeLayout& l, const uint8_t* units, int64_t n_rows, int kvh, const float* q,
                          int n_q, float scale, float* scores, int64_t ld) {
  const int hd = l.head_dim;
  for (int g0 = 0; g0 < n_q; g0 += kHeads) {
    const int nh = std::min(kHeads, n_q - g0);
    for (int64_t j = 0; j < n_rows; ++j) {
      const uint8_t* unit = units + j * l.unit_bytes;
      __m256 acc[kHeads];
      for (int h = 0; h < nh; ++h) acc[h] = _mm256_setzero_ps();
      for (int i = 0; i < hd; i += 8) {
        const int n = std::min(8, hd - i);
        const __m256 k = dequantized8(l, unit, static_cast<int64_t>(kvh) * hd + i, n);
        for (int h = 0; h < nh; ++h) acc[h] = _mm256_fmadd_ps(k, load_first(q + (g0 + h) * hd + i, n), acc[h]);
      }
      for (int h = 0; h < nh; ++h) scores[(g0 + h) * ld + j] = avx2::hsum(acc[h]) * scale;
    }
  }
}

// s_gt = scale · (Σ_c (q_gc s_c) code_ct + Σ_c q_gc z_c) for the T tokens of each unit, 8 tokens per register.
void key_scores_blocks_avx2(const KvCodeLayout& l, const uint8_t* units, int64_t n_units, int kvh, const float* q,
                            int n_q, float scale, float* scores, int64_t ld) {
  const int hd = l.head_dim, T = l.tokens_per_unit;
  for (int64_t u = 0; u < n_units; ++u) {
    const uint8_t* unit = units + u * l.unit_bytes;
    for (int g0 = 0; g0 < n_q; g0 += kHeads) {
      const int nh = std::min(kHeads, n_q - g0);
      for (int t0 = 0; t0 < T; t0 += 8) {
        const int n = std::min(8, T - t0);
        __m256 acc[kHeads];
        float zsum[kHeads] = {};
        for (int h = 0; h < nh; ++h) acc[h] = _mm256_setzero_ps();
        for (int i = 0; i < hd; ++i) {
          const int64_t c = static_cast<int64_t>(kvh) * hd + i;
          const float s = half_at(unit + l.code_bytes + 2 * c);
          const float z = half_at(unit + l.code_bytes + 2 * (l.n_groups + c));
          const __m256 codes = codes8(unit, (c * T + t0) * l.bits, l.bits, n);
          for (int h = 0; h < nh; ++h) {
            const float qc = q[(g0 + h) * hd + i];
            acc[h] = _mm256_fmadd_ps(_mm256_set1_ps(qc * s), codes, acc[h]);
            zsum[h] += qc * z;
          }
        }
        for (int h = 0; h < nh; ++h) {
          const __m256 r = _mm256_mul_ps(_mm256_add_ps(acc[h], _mm256_set1_ps(zsum[h])), _mm256_set1_ps(scale));
          avx2::store_first(scores + (g0 + h) * ld + u * T + t0, r, n);
        }
      }
    }
  }
}

// out_g[i..i+8) += Σ_j p_gj v_j[i..i+8): the accumulators stay in registers over the rows.
void value_rows_avx2(const KvCodeLayout& l, const uint8_t* units, int64_t n_rows, int kvh, const float* p, int n_q,
                     int64_t ld, float* out) {
  const int hd = l.head_dim;
  for (int g0 = 0; g0 < n_q; g0 += kHeads) {
    const int nh = std::min(kHeads, n_q - g0);
    for (int i = 0; i < hd; i += 8) {
      const int n = std::min(8, hd - i);
      __m256 acc[kHeads];
      for (int h = 0; h < nh; ++h) acc[h] = load_first(out + (g0 + h) * hd + i, n);
      for (int64_t j = 0; j < n_rows; ++j) {
        const __m256 v = dequantized8(l, units + j * l.unit_bytes, static_cast<int64_t>(kvh) * hd + i, n);
        for (int h = 0; h < nh; ++h) acc[h] = _mm256_fmadd_ps(_mm256_set1_ps(p[(g0 + h) * ld + j]), v, acc[h]);
      }
      for (int h = 0; h < nh; ++h) avx2::store_first(out + (g0 + h) * hd + i, acc[h], n);
    }
  }
}

void key_scores_f32_avx2(const float* rows, int64_t n_rows, int64_t stride, int hd, const float* q, int n_q,
                         float scale, float* scores, int64_t ld) {
  for (int64_t j = 0; j < n_rows; ++j) {
    const float* k = rows + j * stride;
    for (int g = 0; g < n_q; ++g) {
      __m256 acc = _mm256_setzero_ps();
      for (int i = 0; i < hd; i += 8) {
        const int n = std::min(8, hd - i);
        acc = _mm256_fmadd_ps(load_first(k + i, n), load_first(q + g * hd + i, n), acc);
      }
      scores[g * ld + j] = avx2::hsum(acc) * scale;
    }
  }
}

void value_f32_avx2(const float* rows, int64_t n_rows, int64_t stride, int hd, const float* p, int n_q, int64_t ld,
                    float* out) {
  for (int64_t j = 0; j < n_rows; ++j) {
    const float* v = rows + j * stride;
    for (int g = 0; g < n_q; ++g) {
      const __m256 pj = _mm256_set1_ps(p[g * ld + j]);
      for (int i = 0; i < hd; i += 8) {
        const int n = std::min(8, hd - i);
        float* o = out + g * hd + i;
        avx2::store_first(o, _mm256_fmadd_ps(pj, load_first(v + i, n), load_first(o, n)), n);
      }
    }
  }
}

}  // namespace

const FusedAttentionKernels& avx2_fused_attention_kernels() {
  static const FusedAttentionKernels k{"avx2", key_scores_rows_avx2, key_scores_blocks_avx2, value_rows_avx2,
                                       key_scores_f32_avx2, value_f32_avx2, exp_row_ops_avx2().softmax};
  return k;
}

}  // namespace lowbit
