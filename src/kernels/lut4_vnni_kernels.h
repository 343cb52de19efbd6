// kLut4 GEMV with 16-bit fixed-point activations on AVX-512 VNNI
// (lut4_fixed16.h has the arithmetic and the activation byte order), as a class
// template over whether GFNI splits the nibbles. Included by exactly the two
// translation units that instantiate it (gemv_lut4_avx512vnni.cpp, and
// gemv_lut4_avx512vnni_gfni.cpp compiled with -mgfni), each in an anonymous
// namespace, so the two instantiations never share a definition.
//
// One 64-byte load holds the codes of a 128-column chunk of a row. Per chunk:
// two masks and a shift (or a mask and a GFNI affine) split it into low and high nibbles (one byte each, in
// the order of the activation vectors), an optional vpshufb maps codes to the
// table's bytes, and four vpdpbusd form sum u * hi, shift it by 8, and add
// sum u * lo, so each 32-bit lane holds the exact sum of u * xi over its 8
// columns. The lanes are converted to FP32 and multiplied by their group scale
// once per chunk: 10 vector uops per 128 weights (12 with the table shuffle;
// groups of 16 keep the two nibble halves apart, 16),
// against 24 for the FP32 kernel (lut4/avx512), so decode is bound by memory.
// Two rows run together and share the four activation vectors; the codes are
// prefetched at two distances (stream_prefetch.h).
// GCC 12 flags the intrinsics headers' _mm512_undefined_* values as maybe uninitialized.
#pragma once

#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "kernels/fixed16_avx512.h"
#include "kernels/lut4_fixed16.h"
#include "kernels/packed_matrix.h"
#include "kernels/scale_rows_avx512.h"
#include "kernels/stream_prefetch.h"

namespace lowbit {
namespace {

template <bool kGfni>
struct Lut4VnniKernels {

  // The four activation vectors of one chunk (lut4_fixed16.h order).
  struct ChunkActivation {
    __m512i lo_low, lo_high, hi_low, hi_high;
  };

  static ChunkActivation chunk_activation(const int8_t* bytes, int64_t ch) {
    const int8_t* p = bytes + 256 * ch;
    return {_mm512_loadu_si512(p), _mm512_loadu_si512(p + 64), _mm512_loadu_si512(p + 128),
            _mm512_loadu_si512(p + 192)};
  }

  // Byte j of the result: the high nibble of byte j of q. With GFNI one
  // vgf2p8affineqb (the bit matrix of a 4-bit right shift within each byte);
  // without, a 16-bit shift and a mask.
  static __m512i high_nibbles(__m512i q) {
    if constexpr (kGfni) {
      return _mm512_gf2p8affine_epi64_epi8(q, _mm512_set1_epi64(0x1020408000000000ll), 0);
    } else {
      return _mm512_and_si512(_mm512_srli_epi16(q, 4), _mm512_set1_epi8(0x0F));
    }
  }

  // Lane l (columns of block l / 4, bytes 4l..4l+3 of each nibble half) of the
  // result: the exact sum over its 8 columns of u[code] * xi.
  template <bool kTable>
  static __m512i chunk_dot(__m512i q, __m512i table, const ChunkActivation& x) {
    const __m512i nibble = _mm512_set1_epi8(0x0F);
    __m512i lo = _mm512_and_si512(q, nibble), hi = high_nibbles(q);
    if constexpr (kTable) {
      lo = _mm512_shuffle_epi8(table, lo);
      hi = _mm512_shuffle_epi8(table, hi);
    }
    __m512i acc = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, x.hi_low);
    acc = _mm512_dpbusd_epi32(acc, hi, x.hi_high);
    acc = _mm512_slli_epi32(acc, 8);
    acc = _mm512_dpbusd_epi32(acc, lo, x.lo_low);
    return _mm512_dpbusd_epi32(acc, hi, x.lo_high);
  }

  // Groups of 16 (NVFP4): the low and high nibbles of a block are two groups, so
  // their sums stay apart: low[l], high[l] = the exact sums of u[code] * xi over
  // the 4 low- / high-nibble columns of lane l.
  template <bool kTable>
  static void chunk_dot_halves(__m512i q, __m512i table, const ChunkActivation& x, __m512i& low, __m512i& high) {
    const __m512i nibble = _mm512_set1_epi8(0x0F);
    __m512i lo = _mm512_and_si512(q, nibble), hi = high_nibbles(q);
    if constexpr (kTable) {
      lo = _mm512_shuffle_epi8(table, lo);
      hi = _mm512_shuffle_epi8(table, hi);
    }
    low = _mm512_slli_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, x.hi_low), 8);
    high = _mm512_slli_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), hi, x.hi_high), 8);
    low = _mm512_dpbusd_epi32(low, lo, x.lo_low);
    high = _mm512_dpbusd_epi32(high, hi, x.lo_high);
  }

  // Codes of chunk ch of a row; the last chunk may hold fewer than 4 blocks.
  static __m512i chunk_codes(const uint8_t* row, int64_t ch, int64_t full_chunks, __mmask64 tail) {
    prefetch_stream(row + 64 * ch);
    if (ch < full_chunks) return _mm512_loadu_si512(row + 64 * ch);
    return _mm512_maskz_loadu_epi8(tail, row + 64 * ch);
  }

  // sum_g xs_g * (m_g - offset * s_g): the offset and minimum terms of a row.
  static float row_correction(const float* sf, const float* mf, const float* xs, int64_t ngp, float offset) {
    __m512 acc = _mm512_setzero_ps();
    const __m512 off = _mm512_set1_ps(offset);
    for (int64_t g = 0; g < ngp; g += 16) {
      const __m512 m = mf != nullptr ? _mm512_loadu_ps(mf + g) : _mm512_setzero_ps();
      acc = _mm512_fmadd_ps(_mm512_loadu_ps(xs + g), _mm512_fnmadd_ps(off, _mm512_loadu_ps(sf + g), m), acc);
    }
    return _mm512_reduce_add_ps(acc);
  }

  // kLaneGroups: groups per chunk, 1 (the group is a multiple of 128 columns),
  // 2 (64) or 4 (32), where lane l takes the scale of group l / (16 / kLaneGroups);
  // or 8 (16), where the low-nibble sum of lane l takes group 2 (l / 4) and the
  // high-nibble sum group 2 (l / 4) + 1.
  template <bool kBf16, bool kTable, int kLaneGroups>
  static void gemv_t(const PackedMatrix& w, const Lut4ByteTable& t, const PackedActivation& a, int64_t r0, int64_t r1,
                     float* y) {
    const int64_t nb = w.cols_padded / 32, chunks = (nb + 3) / 4, full_chunks = nb / 4;
    const __mmask64 tail = (nb % 4) == 0 ? 0 : (~0ull >> (64 - 16 * (nb % 4)));
    const int64_t ng = w.n_groups(), rb = w.row_bytes(), ngp = (ng + 15) / 16 * 16 + 16;
    const __m512i table = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t.u)));
    const __m512i lane_group = kLaneGroups == 2   ? _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0)
                               : kLaneGroups == 4 ? _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0)
                                                  : _mm512_set_epi32(6, 6, 6, 6, 4, 4, 4, 4, 2, 2, 2, 2, 0, 0, 0, 0);
    const __m512i lane_group_high = _mm512_add_epi32(lane_group, _mm512_set1_epi32(1));  // kLaneGroups == 8
    const int8_t* xb = a.fixed.bytes.data();
    const float out_scale = a.fixed.scale * w.tensor_scale;
    RowPairScales<kBf16> pair_scales(ngp);  // divided by the multiplier; zeros past ng
    float* sf[2] = {pair_scales.scales(0), pair_scales.scales(1)};
    float* mf[2] = {pair_scales.mins(0), pair_scales.mins(1)};
    for (int64_t r = r0; r < r1; r += 2) {
      const bool pair = r + 1 < r1;  // a lone last row runs as both rows, its copy discarded
      const int64_t rr[2] = {r, pair ? r + 1 : r};
      pair_scales.load(w, rr, 1.0f / t.multiplier);
      const uint8_t* c0 = w.codes.data() + rr[0] * rb;
      const uint8_t* c1 = w.codes.data() + rr[1] * rb;
      __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
      auto step = [&](int64_t ch, __m512 s0, __m512 s1) {
        const ChunkActivation x = chunk_activation(xb, ch);
        const __m512i d0 = chunk_dot<kTable>(chunk_codes(c0, ch, full_chunks, tail), table, x);
        const __m512i d1 = chunk_dot<kTable>(chunk_codes(c1, ch, full_chunks, tail), table, x);
        acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d0), s0, acc0);
        acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d1), s1, acc1);
      };
      if (kLaneGroups == 1 && w.group == 128) {  // one chunk per group: no group loop around it
        for (int64_t ch = 0; ch < chunks; ++ch) step(ch, _mm512_set1_ps(sf[0][ch]), _mm512_set1_ps(sf[1][ch]));
      } else if constexpr (kLaneGroups == 1) {
        const int64_t per_group = w.group / 128;  // chunks per group
        for (int64_t ch = 0, g = 0; ch < chunks; ++g) {
          const __m512 s0 = _mm512_set1_ps(sf[0][g]), s1 = _mm512_set1_ps(sf[1][g]);
          for (const int64_t end = std::min(chunks, ch + per_group); ch < end; ++ch) step(ch, s0, s1);
        }
      } else if constexpr (kLaneGroups == 8) {
        for (int64_t ch = 0; ch < chunks; ++ch) {
          const ChunkActivation x = chunk_activation(xb, ch);
          __m512i low0, high0, low1, high1;
          chunk_dot_halves<kTable>(chunk_codes(c0, ch, full_chunks, tail), table, x, low0, high0);
          chunk_dot_halves<kTable>(chunk_codes(c1, ch, full_chunks, tail), table, x, low1, high1);
          const __m512 s0 = _mm512_loadu_ps(sf[0] + 8 * ch), s1 = _mm512_loadu_ps(sf[1] + 8 * ch);
          acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(low0), _mm512_permutexvar_ps(lane_group, s0), acc0);
          acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(low1), _mm512_permutexvar_ps(lane_group, s1), acc1);
          acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(high0), _mm512_permutexvar_ps(lane_group_high, s0), acc0);
          acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(high1), _mm512_permutexvar_ps(lane_group_high, s1), acc1);
        }
      } else {
        for (int64_t ch = 0; ch < chunks; ++ch) {
          step(ch, _mm512_permutexvar_ps(lane_group, _mm512_loadu_ps(sf[0] + kLaneGroups * ch)),
               _mm512_permutexvar_ps(lane_group, _mm512_loadu_ps(sf[1] + kLaneGroups * ch)));
        }
      }
      const float sums[2] = {_mm512_reduce_add_ps(acc0), _mm512_reduce_add_ps(acc1)};
      for (int i = 0; i < (pair ? 2 : 1); ++i) {
        const float corr = row_correction(sf[i], w.asymmetric ? mf[i] : nullptr, a.fixed.group_sums.data(), ngp - 16,
                                          static_cast<float>(t.offset));
        y[r + i - r0] = (sums[i] + corr) * out_scale;
      }
    }
  }

  template <bool kBf16, bool kTable>
  static void gemv_groups(const PackedMatrix& w, const Lut4ByteTable& t, const PackedActivation& a, int64_t r0,
                          int64_t r1, float* y) {
    if (w.group == 16) {
      gemv_t<kBf16, kTable, 8>(w, t, a, r0, r1, y);
    } else if (w.group == 32) {
      gemv_t<kBf16, kTable, 4>(w, t, a, r0, r1, y);
    } else if (w.group == 64) {
      gemv_t<kBf16, kTable, 2>(w, t, a, r0, r1, y);
    } else {
      gemv_t<kBf16, kTable, 1>(w, t, a, r0, r1, y);
    }
  }

  static void gemv(const PackedMatrix& w, const PackedActivation& a, int64_t r0, int64_t r1, float* y) {
    // Not prepared (layout not eligible) or x not finite: the FP32 kernel.
    if (!a.fixed.valid) return packed_kernels_lut4_avx512().gemv(w, a, r0, r1, y);
    const Lut4ByteTable t = lut4_byte_table(w);  // once per call, for every row
    const bool table = !t.identity;
    if (w.bf16_scales) {
      table ? gemv_groups<true, true>(w, t, a, r0, r1, y) : gemv_groups<true, false>(w, t, a, r0, r1, y);
    } else {
      table ? gemv_groups<false, true>(w, t, a, r0, r1, y) : gemv_groups<false, false>(w, t, a, r0, r1, y);
    }
  }

  // prepare_lut4_fixed16 (lut4_fixed16.cpp) 16 columns at a time: the same products
  // x * (32639 / max|x|), rounded to nearest even by vcvtps2dq as nearbyint
  // does, the same clamp and byte split. Columns past cols are zeros in a.x.
  static void prepare(const PackedMatrix& w, PackedActivation& a) {
    Fixed16Activation& f = a.fixed;
    f.valid = false;
    const int64_t n = w.cols_padded, ng = w.n_groups();
    float amax = 0.0f;
    if (!lut4_fixed16_eligible(w) || !fixed16_absmax_avx512(a.x.data(), n, &amax)) return;
    f.scale = amax / static_cast<float>(kFixed16Max);
    const __m512 inv = _mm512_set1_ps(amax > 0.0f ? static_cast<float>(kFixed16Max) / amax : 0.0f);
    f.bytes.assign(static_cast<size_t>(256 * ((n + 127) / 128)), 0);
    std::vector<int64_t> sums(static_cast<size_t>(ng), 0);
    for (int64_t c = 0; c < n; c += 16) {  // 16 columns: one nibble half of one block, in one group
      const Fixed16Lanes v = fixed16_lanes(a.x.data() + c, inv);
      const int64_t within = c % 128;
      int8_t* chunk = f.bytes.data() + 256 * (c / 128) + 16 * (within / 32) + 64 * ((within % 32) / 16);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(chunk), v.lo);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(chunk + 128), v.hi);
      sums[c / w.group] += _mm512_reduce_add_epi32(v.xi);
    }
    f.group_sums.assign(static_cast<size_t>(ng + 16), 0.0f);
    for (int64_t g = 0; g < ng; ++g) f.group_sums[g] = static_cast<float>(sums[g]);
    f.valid = true;
  }

  static void dequantize_rows(const PackedMatrix& w, int64_t r0, int64_t r1, float* out) {
    packed_kernels_lut4_avx512().dequantize_rows(w, r0, r1, out);
  }

};

}  // namespace
}  // namespace lowbit
