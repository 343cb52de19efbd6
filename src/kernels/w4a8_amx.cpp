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

template <int kc>
void run(const PackedMatrix& w, const AmxActivations& x, const std::vector<int32_t>& qsum, int64_t r0, int64_t r1,
         float* y, int64_t ldy) {
  bool signed_codes = false;
  w4a8_supported(w, &signed_codes);
  const int64_t kp = x.k_padded, rb_max = amx::row_block(kp), ng = w.n_groups();
  std::vector<int8_t> rows(static_cast<size_t>(16 * kp));   // [16][kp] widened row block, zero-padded
  std::vector<int8_t> b(static_cast<size_t>(rb_max * kp));  // [rb_max / 16][kp / 4][64] B tiles
  std::vector<float> s(static_cast<size_t>(ng * rb_max));   // [ng][rb_max] group scales, 0 past r1
  std::vector<float> m(s.size());                           // [ng][rb_max] group minimums (0: INT4)
  alignas(64) int32_t c[4 * 256];                           // [4 tiles][16 tokens][16 rows] group dots
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
        m[g * rb_max + i] = in && w.asymmetric ? scale16(w.mins[(rb + i) * ng + g], w.bf16_scales) : 0.0f;
      }
    }
    for (int64_t t = 0; t < x.tokens_padded; t += kAmxTokenBlock) {
      for (int64_t i = 0; i < nr_pad; i += kAmxRowBlock) {
        std::fill(std::begin(sum), std::end(sum), 0.0f);
        for (int64_t g = 0; g < ng; ++g) {
          // The last group may be short; its K steps run into the zero padding.
          const int64_t k0 = g * w.group, k1 = std::min<int64_t>(k0 + w.group, w.cols_padded);
          amx::zero_c();
          amx::accumulate<kc>(x, t, b.data() + i * kp, b.data() + (i + 16) * kp, k0, k1);
          amx::store_c(c);
          for (int tile = 0; tile < 4; ++tile) {
            const int64_t t0 = t + 16 * (tile / 2), n0 = i + 16 * (tile % 2);
            if (n0 >= nr) continue;
            const __m512 sv = _mm512_loadu_ps(s.data() + g * rb_max + n0);
            const __m512 mv = _mm512_loadu_ps(m.data() + g * rb_max + n0);
            for (int64_t j = 0; j < 16 && t0 + j < x.tokens; ++j) {
              float* acc = sum + 256 * tile + 16 * j;
              const __m512 d = _mm512_cvtepi32_ps(_mm512_load_si512(c + 256 * tile + 16 * j));
              const __m512 qs = _mm512_set1_ps(static_cast<float>(qsum[(t0 + j) * ng + g]));
              const __m512 term = _mm512_add_ps(_mm512_mul_ps(sv, d), _mm512_mul_ps(mv, qs));
              _mm512_store_ps(acc, _mm512_add_ps(_mm512_load_ps(acc), term));
            }
          }
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
  if (w.group % 64 == 0) {
    run<64>(w, x, qsum, r0, r1, y, ldy);
  } else {
    run<32>(w, x, qsum, r0, r1, y, ldy);
  }
}

}  // namespace lowbit
