// The lut4 fixed-point GEMV on 256-bit registers (lut4_fixed16.h), shared by the
// translation units of two table rows, each compiled for its ISA and holding its
// own copy (everything here has internal linkage):
//   lut4/avx2+fixed16     gemv<false>: byte products on vpmaddubsw + vpmaddwd
//   lut4/avxvnni+fixed16  gemv<true>:  byte products on AVX-VNNI's vpdpbusd (VEX)
// Both compute the same exact integer sums, so their outputs are bit-identical.
//
// lut4/avx2+fixed16: the kLut4 GEMV with 16-bit fixed-point activations on
// AVX2 (lut4_fixed16.h has the arithmetic and the activation byte order, shared
// with lut4/avx512vnni: same xi, same exact integer sums per group).
//
// Why: the FP32 AVX2 kernel (lut4/avx2) spends two vpermps, a blend and an FMA
// per 8 weights and is compute-bound at 0.2-0.33 of the memory roofline.
// Without VNNI the byte products run on vpmaddubsw (unsigned x signed bytes, two
// products summed into a saturating int16) and vpmaddwd (int16 pairs summed into
// int32). Per 64 columns (32 code bytes, one 256-bit load):
//   lo = q & 15, hi = (q >> 4) & 15      (optional vpshufb: code -> table byte u)
//   ph = maddubs(lo, xhi_low) + maddubs(hi, xhi_high)     int16, the hi bytes of xi
//   pl = maddubs(lo, xlo_low) + maddubs(hi, xlo_high)     int16, the lo bytes of xi
//   d  = madd(ph, 256) + madd(pl, 1)                      int32 lane = sum u * xi over 8 columns
// 13 vector uops per 64 weights; the lanes are then converted and scaled per
// group as in the VNNI kernel.
//
// Exactness: each int16 of ph / pl is a sum of 4 products u * b with |b| <= 128,
// so |ph|, |pl| <= 4 * 128 * max u. vpmaddubsw saturates its pair sums and the
// 16-bit adds wrap, so the kernel takes only byte tables with max u <= 63
// (4 * 128 * 63 = 32256 < 2^15): INT4 (u <= 15) and FP4 E2M1 x 2 (u <= 24);
// lut4_fixed16_avx2_eligible. An int32 lane gathers at most 16 columns per
// 128-column chunk before conversion: 16 * 63 * 32639 < 2^31.
//
// Lane l of a 64-column half (bytes 4l..4l+3 of its codes) covers block l / 4 of
// the half: low-nibble columns 4 (l % 4) .. +3 and the high-nibble columns 16
// above them. Groups: >= 128 columns: one scale per chunk (both halves summed in
// int32 first); 64: one per half; 32: lanes 0-3 and 4-7 take the two blocks'
// scales; 16: the low- and high-nibble sums stay apart (two groups per block).
// Two rows run together and share the activation loads; the codes are
// prefetched at two distances (stream_prefetch.h).
// With AVX-VNNI, half_dot is 4 vpdpbusd + a shift + an add (6 uops instead of 9 for
// the byte products and their combination): 10 vector uops per 64 weights. The
// eligible tables are the same (u <= 63), so both rows prepare the same activations.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "kernels/avx2_lanes.h"
#include "kernels/fixed16_avx2.h"
#include "kernels/lut4_fixed16.h"
#include "kernels/packed_matrix.h"
#include "kernels/scale_code_f16c.h"
#include "kernels/stream_prefetch.h"

namespace lowbit {
namespace {

// The four activation vectors of one 64-column half hh (lut4_fixed16.h order:
// bytes 32 (hh % 2) .. +31 of each 64-byte vector P of chunk hh / 2).
struct HalfActivation {
  __m256i lo_low, lo_high, hi_low, hi_high;
};

inline HalfActivation half_activation(const int8_t* bytes, int64_t hh) {
  const int8_t* p = bytes + 256 * (hh / 2) + 32 * (hh % 2);
  auto at = [&](int v) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 64 * v)); };
  return {at(0), at(1), at(2), at(3)};
}

// Codes of half hh of a row: 32 bytes, or 16 (one block) for the last half of
// an odd block count, the rest zero (its activation bytes are zero too).
inline __m256i half_codes(const uint8_t* row, int64_t hh, int64_t full_halves) {
  prefetch_stream(row + 32 * hh);
  if (hh < full_halves) return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 32 * hh));
  return _mm256_zextsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 32 * hh)));
}

// The code bytes u of the low and high nibbles of q (through the table when kTable).
template <bool kTable>
inline void split_nibbles(__m256i q, __m256i table, __m256i& lo, __m256i& hi) {
  const __m256i nibble = _mm256_set1_epi8(0x0F);
  lo = _mm256_and_si256(q, nibble);
  hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), nibble);
  if constexpr (kTable) {
    lo = _mm256_shuffle_epi8(table, lo);
    hi = _mm256_shuffle_epi8(table, hi);
  }
}

// 256 * sum(u * hi bytes) + sum(u * lo bytes) per int32 lane, from the int16 pair sums.
inline __m256i combine(__m256i ph, __m256i pl) {
  return _mm256_add_epi32(_mm256_madd_epi16(ph, _mm256_set1_epi16(256)), _mm256_madd_epi16(pl, _mm256_set1_epi16(1)));
}

// 256 * sum(u * b_hi) + sum(u * b_lo) over the four bytes of each int32 lane, with
// AVX-VNNI (kVnni: vpdpbusd sums them straight into int32) or vpmaddubsw +
// vpmaddwd (int16 pair sums first: exact for u <= 63, see the file comment).
template <bool kVnni>
inline __m256i lane_dot(__m256i u, __m256i b_hi, __m256i b_lo) {
  if constexpr (kVnni) {
    const __m256i zero = _mm256_setzero_si256();
    return _mm256_add_epi32(_mm256_slli_epi32(_mm256_dpbusd_avx_epi32(zero, u, b_hi), 8),
                            _mm256_dpbusd_avx_epi32(zero, u, b_lo));
  } else {
    return combine(_mm256_maddubs_epi16(u, b_hi), _mm256_maddubs_epi16(u, b_lo));
  }
}

// Lane l: the exact sum of u[code] * xi over its 8 columns (see the header).
template <bool kVnni, bool kTable>
inline __m256i half_dot(__m256i q, __m256i table, const HalfActivation& x) {
  __m256i lo, hi;
  split_nibbles<kTable>(q, table, lo, hi);
  if constexpr (kVnni) {
    // Both nibbles' products into one int32 chain per byte half: 4 vpdpbusd, a shift, an add.
    const __m256i ph = _mm256_dpbusd_avx_epi32(_mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), lo, x.hi_low), hi,
                                               x.hi_high);
    const __m256i pl = _mm256_dpbusd_avx_epi32(_mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), lo, x.lo_low), hi,
                                               x.lo_high);
    return _mm256_add_epi32(_mm256_slli_epi32(ph, 8), pl);
  } else {
    const __m256i ph = _mm256_add_epi16(_mm256_maddubs_epi16(lo, x.hi_low), _mm256_maddubs_epi16(hi, x.hi_high));
    const __m256i pl = _mm256_add_epi16(_mm256_maddubs_epi16(lo, x.lo_low), _mm256_maddubs_epi16(hi, x.lo_high));
    return combine(ph, pl);
  }
}

// Groups of 16: low[l], high[l] = the exact sums over the 4 low- / high-nibble columns of lane l.
template <bool kVnni, bool kTable>
inline void half_dot_nibbles(__m256i q, __m256i table, const HalfActivation& x, __m256i& low, __m256i& high) {
  __m256i lo, hi;
  split_nibbles<kTable>(q, table, lo, hi);
  low = lane_dot<kVnni>(lo, x.hi_low, x.lo_low);
  high = lane_dot<kVnni>(hi, x.hi_high, x.lo_high);
}

// out[0, n) = the 2-byte scale codes times `factor` as floats, zeros up to out's size.
template <bool kBf16>
void row_floats(const uint16_t* sc, int64_t n, float factor, std::vector<float>& out) {
  const __m256 f = _mm256_set1_ps(factor);
  int64_t g = 0;
  for (; g + 8 <= n; g += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(sc + g));
    __m256 v;
    if constexpr (kBf16) {
      v = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    } else {
      v = _mm256_cvtph_ps(h);
    }
    _mm256_storeu_ps(out.data() + g, _mm256_mul_ps(v, f));
  }
  for (; g < n; ++g) out[g] = scale16<kBf16>(sc[g]) * factor;
  std::fill(out.begin() + n, out.end(), 0.0f);
}

// sum_g xs_g * (m_g - offset * s_g): the offset and minimum terms of a row (s_g already / multiplier).
float row_correction(const float* sf, const float* mf, const float* xs, int64_t ngp, float offset) {
  __m256 acc = _mm256_setzero_ps();
  const __m256 off = _mm256_set1_ps(offset);
  for (int64_t g = 0; g < ngp; g += 8) {
    const __m256 m = mf != nullptr ? _mm256_loadu_ps(mf + g) : _mm256_setzero_ps();
    acc = _mm256_fmadd_ps(_mm256_loadu_ps(xs + g), _mm256_fnmadd_ps(off, _mm256_loadu_ps(sf + g), m), acc);
  }
  return avx2::hsum(acc);
}

// kLaneGroups: groups per 64-column half: 0 (the group is a multiple of 128
// columns), 1 (64), 2 (32), 4 (16).
template <bool kVnni, bool kBf16, bool kTable, int kLaneGroups>
void gemv_t(const PackedMatrix& w, const Lut4ByteTable& t, const PackedActivation& a, int64_t r0, int64_t r1,
            float* y) {
  const int64_t nb = w.cols_padded / 32, halves = (nb + 1) / 2, full_halves = nb / 2;
  const int64_t ng = w.n_groups(), rb = w.row_bytes();
  const int64_t ngp = (ng + 7) / 8 * 8 + 8;  // scale buffers: vector loads past ng read zeros
  const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t.u)));
  const int8_t* xb = a.fixed.bytes.data();
  const float out_scale = a.fixed.scale * w.tensor_scale;
  // Lane l -> its group within the half's scales: block l / 4 (groups of 32),
  // nibble half of block l / 4 (groups of 16: low 2 (l / 4), high 2 (l / 4) + 1).
  const __m256i by_block = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
  const __m256i by_block_low = _mm256_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2);
  const __m256i by_block_high = _mm256_setr_epi32(1, 1, 1, 1, 3, 3, 3, 3);
  std::vector<float> sf[2], mf[2];
  for (int i = 0; i < 2; ++i) {
    sf[i].assign(static_cast<size_t>(ngp), 0.0f);
    mf[i].assign(static_cast<size_t>(ngp), 0.0f);
  }
  for (int64_t r = r0; r < r1; r += 2) {
    const bool pair = r + 1 < r1;  // a lone last row runs as both rows, its copy discarded
    const int64_t rr[2] = {r, pair ? r + 1 : r};
    for (int i = 0; i < 2; ++i) {
      row_floats<kBf16>(w.scales.data() + rr[i] * ng, ng, 1.0f / t.multiplier, sf[i]);
      if (w.asymmetric) row_floats<kBf16>(w.mins.data() + rr[i] * ng, ng, 1.0f, mf[i]);
    }
    const uint8_t* c0 = w.codes.data() + rr[0] * rb;
    const uint8_t* c1 = w.codes.data() + rr[1] * rb;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    if constexpr (kLaneGroups == 0) {
      const int64_t per_group = w.group / 128;  // chunks per group
      for (int64_t hh = 0; hh < halves; hh += 2) {
        const int64_t g = hh / 2 / per_group;
        const HalfActivation xa = half_activation(xb, hh);
        __m256i d0 = half_dot<kVnni, kTable>(half_codes(c0, hh, full_halves), table, xa);
        __m256i d1 = half_dot<kVnni, kTable>(half_codes(c1, hh, full_halves), table, xa);
        if (hh + 1 < halves) {
          const HalfActivation xb1 = half_activation(xb, hh + 1);
          d0 = _mm256_add_epi32(d0, half_dot<kVnni, kTable>(half_codes(c0, hh + 1, full_halves), table, xb1));
          d1 = _mm256_add_epi32(d1, half_dot<kVnni, kTable>(half_codes(c1, hh + 1, full_halves), table, xb1));
        }
        acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d0), _mm256_broadcast_ss(sf[0].data() + g), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d1), _mm256_broadcast_ss(sf[1].data() + g), acc1);
      }
    } else if constexpr (kLaneGroups == 4) {
      for (int64_t hh = 0; hh < halves; ++hh) {
        const HalfActivation xa = half_activation(xb, hh);
        __m256i low0, high0, low1, high1;
        half_dot_nibbles<kVnni, kTable>(half_codes(c0, hh, full_halves), table, xa, low0, high0);
        half_dot_nibbles<kVnni, kTable>(half_codes(c1, hh, full_halves), table, xa, low1, high1);
        const __m256 s0 = _mm256_loadu_ps(sf[0].data() + 4 * hh), s1 = _mm256_loadu_ps(sf[1].data() + 4 * hh);
        acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(low0), _mm256_permutevar8x32_ps(s0, by_block_low), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(low1), _mm256_permutevar8x32_ps(s1, by_block_low), acc1);
        acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(high0), _mm256_permutevar8x32_ps(s0, by_block_high), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(high1), _mm256_permutevar8x32_ps(s1, by_block_high), acc1);
      }
    } else {
      for (int64_t hh = 0; hh < halves; ++hh) {
        const HalfActivation xa = half_activation(xb, hh);
        const __m256i d0 = half_dot<kVnni, kTable>(half_codes(c0, hh, full_halves), table, xa);
        const __m256i d1 = half_dot<kVnni, kTable>(half_codes(c1, hh, full_halves), table, xa);
        __m256 s0, s1;
        if constexpr (kLaneGroups == 1) {
          s0 = _mm256_broadcast_ss(sf[0].data() + hh);
          s1 = _mm256_broadcast_ss(sf[1].data() + hh);
        } else {
          s0 = _mm256_permutevar8x32_ps(_mm256_loadu_ps(sf[0].data() + 2 * hh), by_block);
          s1 = _mm256_permutevar8x32_ps(_mm256_loadu_ps(sf[1].data() + 2 * hh), by_block);
        }
        acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d0), s0, acc0);
        acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d1), s1, acc1);
      }
    }
    const float sums[2] = {avx2::hsum(acc0), avx2::hsum(acc1)};
    for (int i = 0; i < (pair ? 2 : 1); ++i) {
      const float corr = row_correction(sf[i].data(), w.asymmetric ? mf[i].data() : nullptr,
                                        a.fixed.group_sums.data(), ngp - 8, static_cast<float>(t.offset));
      y[r + i - r0] = (sums[i] + corr) * out_scale;
    }
  }
}

template <bool kVnni, bool kBf16, bool kTable>
void gemv_groups(const PackedMatrix& w, const Lut4ByteTable& t, const PackedActivation& a, int64_t r0, int64_t r1,
                 float* y) {
  switch (w.group) {
    case 16: return gemv_t<kVnni, kBf16, kTable, 4>(w, t, a, r0, r1, y);
    case 32: return gemv_t<kVnni, kBf16, kTable, 2>(w, t, a, r0, r1, y);
    case 64: return gemv_t<kVnni, kBf16, kTable, 1>(w, t, a, r0, r1, y);
    default: return gemv_t<kVnni, kBf16, kTable, 0>(w, t, a, r0, r1, y);
  }
}

template <bool kVnni>
void gemv(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
  // Not prepared (layout not eligible) or x not finite: the FP32 kernel.
  if (!a.fixed.valid) return packed_kernels_lut4_avx2().gemv(w, a, r0, r1, y);
  const Lut4ByteTable t = lut4_byte_table(w);  // once per call, for every row
  const bool table = !t.identity;
  if (w.bf16_scales) {
    table ? gemv_groups<kVnni, true, true>(w, t, a, r0, r1, y) : gemv_groups<kVnni, true, false>(w, t, a, r0, r1, y);
  } else {
    table ? gemv_groups<kVnni, false, true>(w, t, a, r0, r1, y) : gemv_groups<kVnni, false, false>(w, t, a, r0, r1, y);
  }
}

// prepare_lut4_fixed16 (lut4_fixed16.cpp) 16 columns at a time, equal to it
// byte for byte; only for the tables this kernel takes (max u <= 63).
void prepare(const PackedMatrix& w, PackedActivation& a) {
  Fixed16Activation& f = a.fixed;
  f.valid = false;
  if (!lut4_fixed16_avx2_eligible(w)) return;
  const int64_t n = w.cols_padded, ng = w.n_groups();
  const float* x = a.x.data();
  float amax = 0.0f;
  if (!fixed16_absmax_avx2(x, n, &amax)) return;
  f.scale = amax / static_cast<float>(kFixed16Max);
  const __m256 inv = _mm256_set1_ps(amax > 0.0f ? static_cast<float>(kFixed16Max) / amax : 0.0f);
  f.bytes.assign(static_cast<size_t>(256 * ((n + 127) / 128)), 0);
  std::vector<int64_t> sums(static_cast<size_t>(ng), 0);
  for (int64_t c = 0; c < n; c += 16) {  // 16 columns: one nibble half of one block, in one group
    const Fixed16Lanes8 v = fixed16_lanes_avx2(x + c, inv);
    const int64_t within = c % 128;
    int8_t* chunk = f.bytes.data() + 256 * (c / 128) + 16 * (within / 32) + 64 * ((within % 32) / 16);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(chunk), v.lo);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(chunk + 128), v.hi);
    sums[c / w.group] += avx2::hsum(_mm256_add_epi32(v.xi_a, v.xi_b));
  }
  f.group_sums.assign(static_cast<size_t>(ng + 16), 0.0f);
  for (int64_t g = 0; g < ng; ++g) f.group_sums[g] = static_cast<float>(sums[g]);
  f.valid = true;
}

void dequantize_rows(const PackedMatrix& w, int64_t r0, int64_t r1, float* out) {
  packed_kernels_lut4_avx2().dequantize_rows(w, r0, r1, out);
}

}  // namespace
}  // namespace lowbit
