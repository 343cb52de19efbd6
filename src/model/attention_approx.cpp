#include "model/attention_approx.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "model/attention_blocks.h"
#include "model/ops.h"

namespace lowbit {

void attention_approx(const ModelConfig& c, const float* q, int n_tokens, int pos, const float* keys,
                      const float* values, float* out, ThreadPool& pool, const ApproxArith& arith, Isa isa) {
  const int hd = c.head_dim, q_dim = c.q_dim(), kv_dim = c.kv_dim();
  const int n_pos = pos + n_tokens;
  const int group = c.n_heads / c.n_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  std::vector<uint32_t> q_bits(static_cast<size_t>(n_tokens) * q_dim);  // [n_tokens, q_dim]
  approx_round_rows(arith, q, n_tokens, q_dim, q_dim, q_bits.data(), &pool);
  // Per KV head: keys as rows over positions [n_pos, hd], values transposed [hd, n_pos]
  // so that P·V is again a product of rows along positions.
  std::vector<std::vector<uint32_t>> k_bits(c.n_kv_heads), vt_bits(c.n_kv_heads);
  pool.parallel_for(c.n_kv_heads, [&](int64_t h0, int64_t h1, int) {
    std::vector<float> vt(static_cast<size_t>(hd) * n_pos);  // [hd, n_pos]
    for (int64_t h = h0; h < h1; ++h) {
      k_bits[h].resize(static_cast<size_t>(n_pos) * hd);
      approx_round_rows(arith, keys + h * hd, n_pos, hd, kv_dim, k_bits[h].data());
      for (int p = 0; p < n_pos; ++p) {
        for (int d = 0; d < hd; ++d) vt[static_cast<size_t>(d) * n_pos + p] = values[static_cast<int64_t>(p) * kv_dim + h * hd + d];
      }
      vt_bits[h].resize(vt.size());
      approx_round_rows(arith, vt.data(), hd, n_pos, n_pos, vt_bits[h].data());
    }
  });
  // Work items (head, row block) in contiguous ranges, zigzag within a head (attention_blocks.h).
  pool.parallel_for(static_cast<int64_t>(c.n_heads) * causal_block_count(n_tokens), [&](int64_t i0, int64_t i1, int) {
    std::vector<float> scores(static_cast<size_t>(kAttnRowBlock) * n_pos);  // [rows, seen]
    std::vector<uint32_t> p_bits(scores.size());                            // [rows, seen]
    for (int64_t item = i0; item < i1; ++item) {
      const auto [h, r0, rows, seen] = causal_block(item, n_tokens, pos);
      const int kvh = h / group;
      const ApproxRows qa{.data = q_bits.data() + static_cast<int64_t>(r0) * q_dim + h * hd, .rows = rows, .k = hd,
                          .stride = q_dim};
      const ApproxRows kb{.data = k_bits[kvh].data(), .rows = seen, .k = hd, .stride = hd};
      approx_gemm(arith, qa, kb, scores.data(), n_pos, scale, isa, nullptr);
      for (int t = 0; t < rows; ++t) {
        float* row = scores.data() + static_cast<int64_t>(t) * n_pos;
        const int visible = pos + r0 + t + 1;
        softmax(row, visible);
        std::fill(row + visible, row + seen, 0.0f);  // later queries' positions of the block
      }
      approx_round_rows(arith, scores.data(), rows, seen, n_pos, p_bits.data());
      const ApproxRows pa{.data = p_bits.data(), .rows = rows, .k = seen, .stride = seen};
      const ApproxRows vb{.data = vt_bits[kvh].data(), .rows = hd, .k = seen, .stride = n_pos};
      approx_gemm(arith, pa, vb, out + static_cast<int64_t>(r0) * q_dim + h * hd, q_dim, 1.0f, isa, nullptr);
    }
  });
}

}  // namespace lowbit
