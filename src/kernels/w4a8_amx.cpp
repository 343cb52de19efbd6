// W4A8 on AMX tiles (amx_gemm.h): per block of weight rows, the 4-bit codes are
// widened to int8 values (UINT4: the code; INT4: the two's-complement value)
// and reordered into B tiles once; every 32-token block then runs 2 x 2 tiles
// of TDPBSSD group by group (a group of 128 columns = two 64-byte K steps, 32
// columns = one 32-byte step), stores the exact int32 group dots
// dot_g[t, r] = sum_{c in g} v[r, c] q[t, c], and adds
// s_g * float(dot_g) + m_g * float(qsum_g) into FP32 sums in group order, as
// w4a8_finish does; the last step multiplies by tensor_scale * s_x.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "core/half.h"
#include "kernels/amx_tile_ops.h"
#include "kernels/w4a8.h"

namespace lowbit {
namespace {

// Row r's codes -> out[0, cols_padded) int8 values, zeros up to k_padded.
void widen_row(const PackedMatrix& w, int64_t r, bool signed_codes, int64_t k_padded, int8_t* out) {
  const uint8_t* codes = w.codes.data() + r * w.row_bytes();
  const __m128i nibble = _mm_set1_epi8(0x0F);
  const __m128i eight = _mm_set1_epi8(signed_codes ? 8 : 0);
  for (int64_t blk = 0; blk < w.cols_padded / 32; ++blk) {
    // Byte j: column 32 blk + j (low nibble), 32 blk + 16 + j (high nibble).
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + 16 * blk));
    __m128i lo = _mm_and_si128(v, nibble), hi = _mm_and_si128(_mm_srli_epi16(v, 4), nibble);
    // (code ^ 8) - 8 sign-extends a two's-complement nibble; with 0 it is the code.
    lo = _mm_sub_epi8(_mm_xor_si128(lo, eight), eight);
    hi = _mm_sub_epi8(_mm_xor_si128(hi, eight), eight);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 32 * blk), lo);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 32 * blk + 16), hi);
  }
  std::memset(out + w.cols_padded, 0, static_cast<size_t>(k_padded - w.cols_padded));
}

float scale16(uint16_t code, bool bf16) { return bf16 ? bf16_to_float(code) : fp16_to_float(code); }

// One group's float step for the 16 tokens of one C tile:
//   acc[j] = (first ? 0 : acc[j]) + (s * float(dot[j]) + m * qs[j])
// dot: [16 tokens][16 rows] int32, qs: [16] float(qsum) of the tokens,
// acc: [16 tokens][16 rows]. With m = 0 (INT4) the m * qs term is left out: it
// is +-0, and adding +-0 to s * dot and then to a sum that starts at +0 (and so
// is never -0) changes no bits.
template <bool asym, bool first>
inline void add_group(const int32_t* dot, const float* qs, __m512 sv, __m512 mv, float* acc) {
  for (int j = 0; j < 16; ++j) {
    __m512 term = _mm512_mul_ps(sv, _mm512_cvtepi32_ps(_mm512_load_si512(dot + 16 * j)));
    if constexpr (asym) term = _mm512_add_ps(term, _mm512_mul_ps(mv, _mm512_set1_ps(qs[j])));
    const __m512 prev = first ? _mm512_setzero_ps() : _mm512_load_ps(acc + 16 * j);
    _mm512_store_ps(acc + 16 * j, _mm512_add_ps(prev, term));
  }
}

template <int kc, bool asym>
void run(const PackedMatrix& w, const AmxActivations& x, const std::vector<int32_t>& qsum, int64_t r0, int64_t r1,
         float* y, int64_t ldy) {
  bool signed_codes = false;
  w4a8_supported(w, &signed_codes);
  const int64_t kp = x.k_padded, rb_max = amx::row_block(kp), ng = w.n_groups();
  std::vector<int8_t> rows(static_cast<size_t>(16 * kp));   // [16][kp] widened row block, zero-padded
  std::vector<int8_t> b(static_cast<size_t>(rb_max * kp));  // [rb_max / 16][kp / 4][64] B tiles
  std::vector<float> s(static_cast<size_t>(ng * rb_max));   // [ng][rb_max] group scales, 0 past r1
  std::vector<float> m(s.size());                           // [ng][rb_max] group minimums (0: INT4)
  std::vector<float> qs(static_cast<size_t>(ng * kAmxTokenBlock));  // [ng][32] float(qsum), 0 past tokens
  alignas(64) int32_t c[2][4 * 256];                        // [2 groups][4 tiles][16 tokens][16 rows] group dots
  alignas(64) float sum[4 * 256];                           // [4 tiles][16 tokens][16 rows] FP32 sums
  const amx::TileScope tiles(kc);
  for (int64_t rb = r0; rb < r1; rb += rb_max) {
    const int64_t nr = std::min(rb_max, r1 - rb);
    const int64_t nr_pad = (nr + kAmxRowBlock - 1) / kAmxRowBlock * kAmxRowBlock;
    for (int64_t i = 0; i < nr_pad; i += 16) {
      for (int64_t n = 0; n < 16; ++n) {
        if (i + n < nr) {
          widen_row(w, rb + i + n, signed_codes, kp, rows.data() + n * kp);
        } else {
          std::memset(rows.data() + n * kp, 0, static_cast<size_t>(kp));
        }
      }
      amx::to_vnni(rows.data(), kp, b.data() + i * kp);
    }
    for (int64_t g = 0; g < ng; ++g) {
      for (int64_t i = 0; i < nr_pad; ++i) {
        const bool in = i < nr;
        s[g * rb_max + i] = in ? scale16(w.scales[(rb + i) * ng + g], w.bf16_scales) : 0.0f;
        m[g * rb_max + i] = in && asym ? scale16(w.mins[(rb + i) * ng + g], w.bf16_scales) : 0.0f;
      }
    }
    for (int64_t t = 0; t < x.tokens_padded; t += kAmxTokenBlock) {
      if constexpr (asym) {
        for (int64_t j = 0; j < kAmxTokenBlock; ++j) {
          for (int64_t g = 0; g < ng; ++g) {
            qs[g * kAmxTokenBlock + j] = t + j < x.tokens ? static_cast<float>(qsum[(t + j) * ng + g]) : 0.0f;
          }
        }
      }
      for (int64_t i = 0; i < nr_pad; i += kAmxRowBlock) {
        // Group g's tile products into the C tiles (the last group may be short:
        // its K steps run into the zero padding).
        const auto multiply = [&](int64_t g) {
          amx::zero_c();
          amx::accumulate<kc>(x, t, b.data() + i * kp, b.data() + (i + 16) * kp, g * w.group,
                              std::min<int64_t>((g + 1) * w.group, w.cols_padded));
        };
        // Adds group g (its dots in c[g % 2]) to sum.
        const auto add = [&](int64_t g) {
          for (int tile = 0; tile < 4; ++tile) {
            const int64_t n0 = i + 16 * (tile % 2);
            if (n0 >= nr) continue;
            const __m512 sv = _mm512_loadu_ps(s.data() + g * rb_max + n0);
            const __m512 mv = _mm512_loadu_ps(m.data() + g * rb_max + n0);
            const int32_t* dot = c[g % 2] + 256 * tile;
            const float* q = qs.data() + g * kAmxTokenBlock + 16 * (tile / 2);
            if (g == 0) {
              add_group<asym, true>(dot, q, sv, mv, sum + 256 * tile);
            } else {
              add_group<asym, false>(dot, q, sv, mv, sum + 256 * tile);
            }
          }
        };
        // Software pipeline: the tiles of group g + 1 are issued before the
        // float step of group g, so the AMX unit and the vector units overlap
        // (the C tiles are stored to the other half of c only after that step).
        multiply(0);
        amx::store_c(c[0]);
        for (int64_t g = 0; g < ng; ++g) {
          if (g + 1 < ng) multiply(g + 1);
          add(g);
          if (g + 1 < ng) amx::store_c(c[(g + 1) % 2]);
        }
        for (int tile = 0; tile < 4; ++tile) {
          const int64_t t0 = t + 16 * (tile / 2), n0 = i + 16 * (tile % 2);
          const __mmask16 valid = amx::first_lanes(nr - n0);
          if (valid == 0) continue;
          for (int64_t j = 0; j < 16 && t0 + j < x.tokens; ++j) {
            const __m512 v = _mm512_mul_ps(_mm512_set1_ps(w.tensor_scale * x.scale[t0 + j]),
                                           _mm512_load_ps(sum + 256 * tile + 16 * j));
            _mm512_mask_storeu_ps(y + (t0 + j) * ldy + (rb + n0 - r0), valid, v);
          }
        }
      }
    }
  }
}

}  // namespace

void w4a8_amx(const PackedMatrix& w, const AmxActivations& x, const std::vector<int32_t>& qsum, int64_t r0,
              int64_t r1, float* y, int64_t ldy) {
  const bool k64 = w.group % 64 == 0;
  if (w.asymmetric) {
    (k64 ? run<64, true> : run<32, true>)(w, x, qsum, r0, r1, y, ldy);
  } else {
    (k64 ? run<64, false> : run<32, false>)(w, x, qsum, r0, r1, y, ldy);
  }
}

}  // namespace lowbit
