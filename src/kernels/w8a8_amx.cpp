// W8A8 on AMX tiles (amx_gemm.h): per block of weight rows, the INT8 rows are
// reordered into B tiles once, then every 32-token block of activations runs
// 2 x 2 tiles of TDPBSSD over the whole K. The exact int32 sums
// acc[t, r] = sum_c q[t, c] w[r, c] then take w8a8_reference's float steps.
// GCC 12 flags the intrinsics headers' _mm512_undefined_* values as maybe uninitialized.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "kernels/amx_tile_ops.h"

namespace lowbit {

void w8a8_amx(const PackedMatrix& w, const AmxActivations& x, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  const int64_t kp = x.k_padded, rb_max = amx::row_block(kp);
  std::vector<int8_t> rows(static_cast<size_t>(16 * kp));   // [16][kp] one row block, zero-padded
  std::vector<int8_t> b(static_cast<size_t>(rb_max * kp));  // [rb_max / 16][kp / 4][64] B tiles
  std::vector<float> sw(static_cast<size_t>(rb_max));       // [rb_max] s_w * tensor_scale, 0 past r1
  alignas(64) int32_t c[4 * 256];                           // [4 tiles][16 tokens][16 rows]
  const amx::TileScope tiles(kAmxK);
  for (int64_t rb = r0; rb < r1; rb += rb_max) {
    const int64_t nr = std::min(rb_max, r1 - rb);
    const int64_t nr_pad = (nr + kAmxRowBlock - 1) / kAmxRowBlock * kAmxRowBlock;
    for (int64_t i = 0; i < nr_pad; i += 16) {
      std::fill(rows.begin(), rows.end(), 0);
      for (int64_t n = 0; n < 16 && i + n < nr; ++n) {
        std::memcpy(rows.data() + n * kp, w.codes.data() + (rb + i + n) * w.row_bytes(),
                    static_cast<size_t>(w.cols_padded));
      }
      amx::to_vnni(rows.data(), kp, b.data() + i * kp);
    }
    for (int64_t i = 0; i < nr_pad; ++i) sw[i] = i < nr ? w.row_scales[rb + i] * w.tensor_scale : 0.0f;
    for (int64_t t = 0; t < x.tokens_padded; t += kAmxTokenBlock) {
      for (int64_t i = 0; i < nr_pad; i += kAmxRowBlock) {
        amx::zero_c();
        amx::accumulate<kAmxK>(x, t, b.data() + i * kp, b.data() + (i + 16) * kp, 0, kp);
        amx::store_c(c);
        for (int tile = 0; tile < 4; ++tile) {
          const int64_t t0 = t + 16 * (tile / 2), n0 = i + 16 * (tile % 2);
          const __mmask16 valid = amx::first_lanes(nr - n0);
          if (valid == 0) continue;
          const __m512 swv = _mm512_loadu_ps(sw.data() + n0);
          for (int64_t j = 0; j < 16 && t0 + j < x.tokens; ++j) {
            __m512 v = _mm512_cvtepi32_ps(_mm512_load_si512(c + 256 * tile + 16 * j));
            v = _mm512_mul_ps(v, _mm512_set1_ps(x.scale[t0 + j]));
            v = _mm512_mul_ps(v, swv);
            _mm512_mask_storeu_ps(y + (t0 + j) * ldy + (rb + n0 - r0), valid, v);
          }
        }
      }
    }
  }
}

}  // namespace lowbit
