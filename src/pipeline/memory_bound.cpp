#include "pipeline/memory_bound.h"

#include <algorithm>
#include <array>

namespace lowbit {
namespace {

constexpr uint64_t kOverheadBytes = 300ull << 20;
constexpr uint64_t kProxyErrorRows = 128;  // hessian_proxy_error's row block (quant/gptq.cpp)

struct Phase {
  uint64_t in = 0;      // input width
  uint64_t params = 0;  // weights of every linear of the phase
  uint64_t widest = 0;  // out · in of its largest linear
};

}  // namespace

MemoryBound quantize_memory_bound(const ModelConfig& c, int n_samples, int seq_len, int threads, bool bf16_products) {
  const uint64_t dim = c.dim, q = c.q_dim(), kv = c.kv_dim(), ffn = c.ffn_dim;
  const bool calibrated = n_samples > 0;
  const std::array<Phase, 4> phases = {Phase{dim, (q + 2 * kv) * dim, q * dim}, Phase{q, dim * q, dim * q},
                                       Phase{dim, 2 * ffn * dim, ffn * dim}, Phase{ffn, dim * ffn, dim * ffn}};
  auto hessian = [&](const Phase& p) { return calibrated ? 8 * p.in * p.in : 0; };
  auto work = [&](const Phase& p) {
    return calibrated ? 8 * p.in * p.in + 24 * p.widest + 16 * kProxyErrorRows * p.in : 8 * p.widest;
  };
  const uint64_t states = calibrated ? 4ull * static_cast<uint64_t>(n_samples) * seq_len * dim : 0;
  const uint64_t len = calibrated ? static_cast<uint64_t>(seq_len) : 0;
  const uint64_t block = 4 * len * (2 * dim + 2 * q + 2 * kv + 2 * ffn) + static_cast<uint64_t>(threads) * 4 * len * len;

  uint64_t all_params = 0, all_h = 0;
  for (const Phase& p : phases) {
    all_params += p.params;
    all_h += hessian(p);
  }
  uint64_t moment = calibrated ? 2 * 4 * all_params + all_h : 0;  // the statistics pass
  if (calibrated && bf16_products) {
    // HessianPrecision::kBf16's window scratch at the widest input: its FP32 XᵀX and X as BF16 panels.
    uint64_t widest_in = 0;
    for (const Phase& p : phases) widest_in = std::max(widest_in, p.in);
    moment += 4 * widest_in * widest_in + 2 * len * widest_in;
  }
  uint64_t done_params = 0;
  for (size_t i = 0; i < phases.size(); ++i) {
    uint64_t later_h = 0;
    for (size_t j = i; j < phases.size(); ++j) later_h += hessian(phases[j]);
    moment = std::max(moment, 2 * 4 * (all_params - done_params) + 4 * done_params + later_h + work(phases[i]));
    done_params += phases[i].params;
  }
  MemoryBound b;
  const uint64_t table = 4ull * c.vocab_size * dim;
  b.tables = 2 * table + states;
  b.layers = states + block + moment;
  b.overhead = kOverheadBytes;
  return b;
}

}  // namespace lowbit
