#include "model/attention_bf16.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "kernels/gemm_bf16.h"
#include "model/ops.h"

namespace lowbit {

void attention_bf16(const ModelConfig& c, const float* q, int n_tokens, int pos, const float* keys,
                    const float* values, float* out, ThreadPool& pool, Isa isa) {
  const int hd = c.head_dim, q_dim = c.q_dim(), kv_dim = c.kv_dim();
  const int n_pos = pos + n_tokens;
  const int group = c.n_heads / c.n_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  // Queries as BF16 rows [n_tokens][q_dim / 2 pairs]: head h's pairs start at h·hd/2
  // (hd is even for RoPE, so no pair straddles two heads).
  const int64_t q_pairs = (q_dim + 1) / 2;
  std::unique_ptr<uint32_t[]> q_bf16(new uint32_t[static_cast<size_t>(n_tokens) * q_pairs]);  // every pair written
  round_rows_bf16_to(q, n_tokens, q_dim, q_dim, q_bf16.get(), isa, &pool);
  // Keys as panels over positions (B rows = positions, k = head dims), values as panels
  // over head dims (k = positions), one set per KV head.
  std::vector<Bf16Panels> k_panels(c.n_kv_heads), v_panels(c.n_kv_heads);
  pool.parallel_for(c.n_kv_heads, [&](int64_t h0, int64_t h1, int) {
    for (int64_t h = h0; h < h1; ++h) {
      pack_bf16_panels_from_rows(keys + h * hd, n_pos, hd, kv_dim, k_panels[h]);
      pack_bf16_panels_from_columns(values + h * hd, n_pos, hd, kv_dim, v_panels[h], isa, nullptr);
    }
  });
  // Work items (head, row block) in contiguous ranges, zigzag within a head (attention_blocks.h).
  const int64_t p_pairs = (n_pos + 1) / 2;
  pool.parallel_for(static_cast<int64_t>(c.n_heads) * causal_block_count(n_tokens), [&](int64_t i0, int64_t i1, int) {
    std::vector<float> scores(static_cast<size_t>(kAttnRowBlock) * n_pos);       // [rows, seen]
    std::vector<uint32_t> p_bf16(static_cast<size_t>(kAttnRowBlock) * p_pairs);  // [rows][seen pairs]
    for (int64_t item = i0; item < i1; ++item) {
      const auto [h, r0, rows, seen] = causal_block(item, n_tokens, pos);
      const int kvh = h / group;
      const Bf16Rows qa{.rows = rows,
                        .pairs = hd / 2,
                        .row_stride = q_pairs,
                        .pair_stride = 1,
                        .data = q_bf16.get() + r0 * q_pairs + h * (hd / 2)};
      gemm_bf16(qa, k_panels[kvh], scores.data(), n_pos, {.cols = seen, .alpha = scale}, isa, nullptr);
      const int64_t seen_pairs = (seen + 1) / 2;
      for (int t = 0; t < rows; ++t) {
        float* row = scores.data() + static_cast<int64_t>(t) * n_pos;
        const int visible = pos + r0 + t + 1;
        softmax(row, visible);
        std::fill(row + visible, row + seen, 0.0f);  // later queries' positions of the block
        round_rows_bf16_to(row, 1, seen, n_pos, p_bf16.data() + static_cast<int64_t>(t) * p_pairs, isa);
      }
      const Bf16Rows pa{.rows = rows, .pairs = seen_pairs, .row_stride = p_pairs, .pair_stride = 1, .data = p_bf16.data()};
      gemm_bf16(pa, v_panels[kvh], out + static_cast<int64_t>(r0) * q_dim + h * hd, q_dim, {}, isa, nullptr);
    }
  });
}

}  // namespace lowbit
