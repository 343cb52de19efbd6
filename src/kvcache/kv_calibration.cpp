#include "kvcache/kv_calibration.h"

#include <cmath>

#include "kvcache/quantized_kv_cache.h"

namespace lowbit {
namespace {

std::vector<float> uniform_levels(int bits) {
  const int n = 1 << bits;
  std::vector<float> levels(n);
  for (int i = 0; i < n; ++i) levels[i] = static_cast<float>(-1.0 + 2.0 * i / (n - 1));
  return levels;
}

// Keeps at most `limit` values, evenly strided.
void thin(std::vector<float>& v, int64_t limit) {
  if (static_cast<int64_t>(v.size()) <= limit) return;
  const double stride = static_cast<double>(v.size()) / static_cast<double>(limit);
  for (int64_t i = 0; i < limit; ++i) v[i] = v[static_cast<size_t>(i * stride)];
  v.resize(limit);
}

// Runs each sequence through the model with a cache of `storage` and calls
// visit(cache, n) on the filled cache of each (n = the sequence's length).
template <typename Visit>
Status for_each_stored(const LlamaModel& model, const std::vector<std::vector<int32_t>>& sequences,
                       const KvSpec& storage, ThreadPool& pool, Visit visit) {
  if (sequences.empty()) return make_error("KV calibration: no sequences");
  std::vector<float> logits(model.config().vocab_size);
  ForwardOptions last_only;
  last_only.all_logits = false;
  for (const std::vector<int32_t>& seq : sequences) {
    const int n = static_cast<int>(seq.size());
    LB_ASSIGN_OR_RETURN(auto cache, QuantizedKvCache::create(storage, model.kv_cache_shape(n)));
    LB_RETURN_IF_ERROR(model.forward(seq.data(), n, 0, *cache, logits.data(), pool, last_only));
    visit(*cache, n);
  }
  return Status::ok_status();
}

}  // namespace

KvSpec kv_spec_as_fp32_storage(const KvSpec& spec) {
  KvSpec fp = spec;
  fp.layers = {KvLayerSpec{}};
  fp.codebooks = {};
  fp.sparse_percent = 0.0;
  return fp;
}

Expected<KvCodebooks> fit_kv_codebooks(const LlamaModel& model, const std::vector<std::vector<int32_t>>& sequences,
                                       const KvSpec& spec, ThreadPool& pool, const KvCalibrationOptions& options) {
  const ModelConfig& c = model.config();
  const KvSpec storage = kv_spec_as_fp32_storage(spec);
  const int width = c.kv_dim();
  const int sparse = kv_sparse_count(spec.sparse_percent, width);

  // Codecs of the NUQ tensors with a placeholder (uniform) codebook: the
  // element-domain values do not depend on the levels.
  std::vector<std::unique_ptr<KvTensorCodec>> codecs(2 * c.n_layers);
  for (int l = 0; l < c.n_layers; ++l) {
    for (bool keys : {true, false}) {
      const KvTensorSpec& t = keys ? spec.layer(l).key : spec.layer(l).value;
      if (t.element != KvElement::kCodebook) continue;
      LB_ASSIGN_OR_RETURN(KvTensorCodec codec,
                          KvTensorCodec::create(t, width, c.head_dim, sparse, uniform_levels(t.bits),
                                                fmt::format("KV calibration: layer {} {}", l, keys ? "keys" : "values")));
      codecs[2 * l + (keys ? 0 : 1)] = std::make_unique<KvTensorCodec>(std::move(codec));
    }
  }
  std::vector<std::vector<float>> samples(2 * c.n_layers);
  KvCodecScratch scratch;
  std::vector<float> rows;
  LB_RETURN_IF_ERROR(for_each_stored(model, sequences, storage, pool, [&](const QuantizedKvCache& cache, int n) {
    rows.resize(static_cast<size_t>(n) * width);
    for (size_t i = 0; i < codecs.size(); ++i) {
      if (!codecs[i]) continue;
      cache.read_stored(static_cast<int>(i / 2), i % 2 == 0, n, rows.data());
      const int T = codecs[i]->tokens_per_unit();
      for (int p = std::min(spec.sinks, n); p + T <= n; p += T) {
        codecs[i]->normalized(rows.data() + static_cast<int64_t>(p) * width, samples[i], scratch);
      }
    }
  }));
  KvCodebooks books;
  books.layers.resize(c.n_layers);
  for (size_t i = 0; i < codecs.size(); ++i) {
    if (!codecs[i]) continue;
    const int bits = codecs[i]->spec().bits;
    thin(samples[i], options.max_samples);
    const std::string what = fmt::format("KV calibration: layer {} {}", i / 2, i % 2 == 0 ? "keys" : "values");
    auto levels = fit_lloyd_codebook(samples[i], {}, 1 << bits, -1.0f, 1.0f, options.lloyd);
    if (!levels.ok()) return levels.status().with_context(what);
    if (spec.qnorm) {
      levels = normalize_codebook_moments(samples[i], {}, std::move(levels).value());
      if (!levels.ok()) return levels.status().with_context(what);
    }
    (i % 2 == 0 ? books.layers[i / 2].key : books.layers[i / 2].value) = std::move(levels).value();
  }
  return books;
}

Expected<KvChannelOrder> fit_kv_key_order(const LlamaModel& model, const std::vector<std::vector<int32_t>>& sequences,
                                          const KvSpec& spec, ThreadPool& pool) {
  const ModelConfig& c = model.config();
  // The keys as written, before the permutation and the rotation.
  KvSpec storage = kv_spec_as_fp32_storage(spec);
  storage.rotate = false;
  storage.reorder_keys = false;
  storage.key_order = {};
  const int width = c.kv_dim();
  std::vector<std::vector<double>> sum_abs(c.n_layers, std::vector<double>(width, 0.0));  // [n_layers, kv_dim]
  int64_t rows_seen = 0;
  std::vector<float> rows;
  LB_RETURN_IF_ERROR(for_each_stored(model, sequences, storage, pool, [&](const QuantizedKvCache& cache, int n) {
    rows.resize(static_cast<size_t>(n) * width);
    const int first = std::min(spec.sinks, n);
    for (int l = 0; l < c.n_layers; ++l) {
      cache.read_stored(l, true, n, rows.data());
      for (int p = first; p < n; ++p) {
        for (int j = 0; j < width; ++j) sum_abs[l][j] += std::fabs(rows[static_cast<size_t>(p) * width + j]);
      }
    }
    rows_seen += n - first;
  }));
  if (rows_seen == 0) return make_error("KV calibration: no key rows outside the {} sink tokens", spec.sinks);
  KvChannelOrder order;
  for (int l = 0; l < c.n_layers; ++l) {
    for (double& x : sum_abs[l]) x /= static_cast<double>(rows_seen);
    auto o = outlier_aware_order(sum_abs[l], spec.rotate_group * c.head_dim);
    if (!o.ok()) return o.status().with_context(fmt::format("KV calibration: layer {} keys", l));
    order.layers.push_back(std::move(o).value());
  }
  return order;
}

}  // namespace lowbit
