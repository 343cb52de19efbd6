#include "train/lora_adapters.h"

#include <algorithm>
#include <cmath>

#include "core/splitmix64.h"
#include "model/block_shapes.h"
#include "model/decoder_block.h"

namespace lowbit {

int64_t LoraAdapters::n_parameters() const {
  int64_t n = 0;
  for (const auto& layer : layers) {
    for (const LoraMatrix& m : layer) n += static_cast<int64_t>(m.a.size() + m.b.size());
  }
  return n;
}

LoraAdapters make_lora_adapters(const ModelConfig& c, int rank, float alpha, uint64_t seed,
                                const std::function<bool(int layer, int k)>& target) {
  LoraAdapters lora;
  lora.rank = rank;
  lora.scale = alpha / static_cast<float>(rank);
  lora.layers.resize(static_cast<size_t>(c.n_layers));
  SplitMix64 rng{seed};
  const std::array<LinearShape, 7> shapes = block_linear_shapes(c);
  for (int l = 0; l < c.n_layers; ++l) {
    for (int k = 0; k < 7; ++k) {
      LoraMatrix& m = lora.layers[static_cast<size_t>(l)][static_cast<size_t>(k)];
      m.in = shapes[static_cast<size_t>(k)].cols;
      m.out = shapes[static_cast<size_t>(k)].rows;
      if (target && !target(l, k)) continue;
      m.a.resize(static_cast<size_t>(rank * m.in));
      const float bound = 1.0f / std::sqrt(static_cast<float>(m.in));
      for (float& v : m.a) v = bound * static_cast<float>(2.0 * rng.uniform() - 1.0);  // [-bound, bound)
      m.b.assign(static_cast<size_t>(m.out * rank), 0.0f);
    }
  }
  return lora;
}

LoraAdapters zero_lora_like(const LoraAdapters& like) {
  LoraAdapters z = like;
  for (auto& layer : z.layers) {
    for (LoraMatrix& m : layer) {
      std::fill(m.a.begin(), m.a.end(), 0.0f);
      std::fill(m.b.begin(), m.b.end(), 0.0f);
    }
  }
  return z;
}

void merge_lora_layer(const LoraAdapters& lora, int index, LayerWeights& layer) {
  const int r = lora.rank;
  for (int k = 0; k < 7; ++k) {
    const LoraMatrix& m = lora.layers[static_cast<size_t>(index)][static_cast<size_t>(k)];
    if (!m.active()) continue;
    Matrix& w = linear_matrix(layer, DecoderBlock::kLinearSuffixes[static_cast<size_t>(k)]);
    // W[o, i] += s Σ_j B[o, j] A[j, i], the sum in double.
    std::vector<double> row(static_cast<size_t>(m.in));
    for (int64_t o = 0; o < m.out; ++o) {
      std::fill(row.begin(), row.end(), 0.0);
      for (int j = 0; j < r; ++j) {
        const double bj = m.b[static_cast<size_t>(o * r + j)];
        const float* a = m.a.data() + static_cast<size_t>(j) * m.in;
        for (int64_t i = 0; i < m.in; ++i) row[static_cast<size_t>(i)] += bj * a[i];
      }
      float* wr = w.data.data() + o * m.in;
      for (int64_t i = 0; i < m.in; ++i) wr[i] += static_cast<float>(lora.scale * row[static_cast<size_t>(i)]);
    }
  }
}

}  // namespace lowbit
