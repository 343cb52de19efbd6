#include "model/attention_fixed_order.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/fixed_order.h"

namespace lowbit {

void attention_fixed_order(const ModelConfig& c, const float* q, int n_tokens, int pos, const float* keys,
                           const float* values, float* out, ThreadPool& pool, Isa isa) {
  const int hd = c.head_dim, kv_dim = c.kv_dim(), q_dim = c.q_dim();
  const int group = c.n_heads / c.n_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const FixedOrderRowsFn dot_rows = fixed_order_kernels(isa).rows;
  pool.parallel_for(c.n_heads, [&](int64_t h0, int64_t h1, int) {
    std::vector<float> scores(static_cast<size_t>(pos + n_tokens));  // [visible positions]
    std::vector<float> head_keys;                                    // [visible, hd] this kv head's keys
    const int n_pos = pos + n_tokens;
    for (int h = static_cast<int>(h0); h < h1; ++h) {
      const int kvh = h / group;
      // The kv head's keys gathered into rows of hd, the layout the dot kernel reads.
      head_keys.resize(static_cast<size_t>(n_pos) * hd);
      for (int p = 0; p < n_pos; ++p) {
        const float* k = keys + static_cast<int64_t>(p) * kv_dim + kvh * hd;
        std::copy(k, k + hd, head_keys.begin() + static_cast<int64_t>(p) * hd);
      }
      for (int t = 0; t < n_tokens; ++t) {
        const int visible = pos + t + 1;
        const float* qt = q + static_cast<int64_t>(t) * q_dim + h * hd;  // [hd]
        dot_rows(head_keys.data(), hd, 0, visible, qt, 1, scores.data(), 0);
        for (int p = 0; p < visible; ++p) scores[p] = scores[p] * scale;
        fixed_order_softmax(scores.data(), visible);
        float* o = out + static_cast<int64_t>(t) * q_dim + h * hd;  // [hd]
        for (int i = 0; i < hd; ++i) o[i] = 0.0f;
        for (int p = 0; p < visible; ++p) {
          const float w = scores[p];
          const float* v = values + static_cast<int64_t>(p) * kv_dim + kvh * hd;
          for (int i = 0; i < hd; ++i) {
            const float prod = w * v[i];
            o[i] = o[i] + prod;
          }
        }
      }
    }
  });
}

}  // namespace lowbit
