#include "kvcache/kv_tuner.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "eval/metrics.h"
#include "kvcache/quantized_kv_cache.h"

namespace lowbit {
namespace {

// Log-probabilities of the FP32 run, [n, vocab] per sequence, as floats.
struct Reference {
  std::vector<std::vector<float>> logp;
};

Expected<double> mean_kl(const LlamaModel& model, const std::vector<std::vector<int32_t>>& sequences,
                         const KvSpec& spec, const Reference& ref, ThreadPool& pool) {
  const int vocab = model.config().vocab_size;
  double sum = 0.0;
  int64_t count = 0;
  const KvCacheFactory factory = make_kv_cache_factory(spec);
  for (size_t s = 0; s < sequences.size(); ++s) {
    const int n = static_cast<int>(sequences[s].size());
    std::vector<float> logits(static_cast<size_t>(n) * vocab);  // [n, vocab]
    LB_ASSIGN_OR_RETURN(auto cache, model.make_cache(n, factory));
    LB_RETURN_IF_ERROR(model.forward(sequences[s].data(), n, 0, *cache, logits.data(), pool));
    std::vector<double> kl(n);
    pool.parallel_for(n, [&](int64_t b, int64_t e, int) {
      std::vector<double> logp, base;
      for (int64_t t = b; t < e; ++t) {
        log_softmax(logits.data() + t * vocab, vocab, logp);
        const float* r = ref.logp[s].data() + t * vocab;
        base.assign(r, r + vocab);
        kl[t] = kl_divergence(base, logp);
      }
    });
    for (double v : kl) sum += v;
    count += n;
  }
  return count > 0 ? sum / static_cast<double>(count) : 0.0;
}

}  // namespace

nlohmann::json KvSensitivity::to_json() const {
  return {{"bits", bits}, {"key_kld", key}, {"value_kld", value}};
}

Expected<KvSensitivity> measure_kv_sensitivity(const LlamaModel& model,
                                               const std::vector<std::vector<int32_t>>& sequences,
                                               const KvSpec& base, const std::vector<int>& bits, ThreadPool& pool) {
  const ModelConfig& c = model.config();
  if (sequences.empty()) return make_error("KV tuning: no calibration sequences");
  if (bits.empty()) return make_error("KV tuning: no candidate bit widths");
  if (base.uses_codebooks()) return make_error("KV tuning: -nuq specs are not tuned (their codebooks depend on the bits)");
  LB_RETURN_IF_ERROR(check_kv_spec(base, model.kv_cache_shape(1)));
  KvSensitivity out;
  out.bits = bits;
  std::sort(out.bits.begin(), out.bits.end());
  out.key.assign(c.n_layers, std::vector<double>(out.bits.size()));
  out.value.assign(c.n_layers, std::vector<double>(out.bits.size()));

  const int vocab = c.vocab_size;
  Reference ref;
  for (const std::vector<int32_t>& seq : sequences) {
    const int n = static_cast<int>(seq.size());
    std::vector<float> logits(static_cast<size_t>(n) * vocab);
    auto cache = model.make_fp32_cache(n);
    LB_RETURN_IF_ERROR(model.forward(seq.data(), n, 0, *cache, logits.data(), pool));
    pool.parallel_for(n, [&](int64_t b, int64_t e, int) {
      std::vector<double> logp;
      for (int64_t t = b; t < e; ++t) {
        log_softmax(logits.data() + t * vocab, vocab, logp);
        std::copy(logp.begin(), logp.end(), logits.begin() + t * vocab);
      }
    });
    ref.logp.push_back(std::move(logits));
  }

  // Probe specs: every layer FP32 except one tensor of one layer.
  KvSpec probe = base;
  probe.codebooks = {};
  const KvLayerSpec like = base.layer(0);
  for (int l = 0; l < c.n_layers; ++l) {
    for (size_t i = 0; i < out.bits.size(); ++i) {
      for (bool keys : {true, false}) {
        probe.layers.assign(c.n_layers, KvLayerSpec{});
        const KvTensorSpec& t = keys ? like.key : like.value;
        LB_ASSIGN_OR_RETURN(KvTensorSpec q, kv_tensor_with_bits(t, out.bits[i], "KV tuning candidate"));
        (keys ? probe.layers[l].key : probe.layers[l].value) = q;
        LB_ASSIGN_OR_RETURN(double kl, mean_kl(model, sequences, probe, ref, pool));
        (keys ? out.key : out.value)[l][i] = kl;
      }
    }
  }
  return out;
}

Expected<std::vector<std::pair<int, int>>> choose_kv_bits(const KvSensitivity& s, double average_bits) {
  const int L = static_cast<int>(s.key.size());
  const int K = static_cast<int>(s.bits.size());
  if (L == 0 || K == 0 || static_cast<int>(s.value.size()) != L) return make_error("KV tuning: empty sensitivity table");
  const int budget = static_cast<int>(std::floor(2.0 * L * average_bits + 1e-9));
  if (budget < 2 * L * s.bits.front()) {
    return make_error("KV tuning: an average of {} bits is below the smallest candidate ({} bits)", average_bits,
                      s.bits.front());
  }
  const double inf = std::numeric_limits<double>::infinity();
  // best[l][b]: least error of layers [0, l) using exactly b bits; choice for backtracking.
  std::vector<std::vector<double>> best(L + 1, std::vector<double>(budget + 1, inf));
  std::vector<std::vector<std::pair<int, int>>> choice(L + 1, std::vector<std::pair<int, int>>(budget + 1));
  best[0][0] = 0.0;
  for (int l = 0; l < L; ++l) {
    for (int b = 0; b <= budget; ++b) {
      if (best[l][b] == inf) continue;
      for (int i = 0; i < K; ++i) {
        for (int j = 0; j < K; ++j) {
          const int nb = b + s.bits[i] + s.bits[j];
          if (nb > budget) continue;
          const double err = best[l][b] + s.key[l][i] + s.value[l][j];
          if (err < best[l + 1][nb]) {
            best[l + 1][nb] = err;
            choice[l + 1][nb] = {i, j};
          }
        }
      }
    }
  }
  int at = 0;
  for (int b = 0; b <= budget; ++b) {
    if (best[L][b] < best[L][at]) at = b;
  }
  std::vector<std::pair<int, int>> bits(L);
  for (int l = L; l > 0; --l) {
    const auto [i, j] = choice[l][at];
    bits[l - 1] = {s.bits[i], s.bits[j]};
    at -= s.bits[i] + s.bits[j];
  }
  return bits;
}

Expected<KvSpec> kv_spec_with_layer_bits(const KvSpec& base, const std::vector<std::pair<int, int>>& bits) {
  KvSpec spec = base;
  const KvLayerSpec like = base.layer(0);
  spec.layers.clear();
  for (size_t l = 0; l < bits.size(); ++l) {
    KvLayerSpec layer;
    LB_ASSIGN_OR_RETURN(layer.key, kv_tensor_with_bits(like.key, bits[l].first, fmt::format("layer {} keys", l)));
    LB_ASSIGN_OR_RETURN(layer.value, kv_tensor_with_bits(like.value, bits[l].second, fmt::format("layer {} values", l)));
    spec.layers.push_back(layer);
  }
  return spec;
}

}  // namespace lowbit
