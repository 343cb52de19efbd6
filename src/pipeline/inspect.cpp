#include "pipeline/inspect.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>
#include <string_view>

#include "core/progress.h"
#include "model/decoder_block.h"
#include "model/online_hadamard_linear.h"
#include "pipeline/layer_runner.h"

namespace lowbit {
namespace {

// Collects the leader inputs of one decoder layer over every window:
// rows[p] is [tokens so far, channels of point p].
class LayerInputCollector : public ActivationObserver {
 public:
  void observe(const std::string& linear_name, const float* x, int64_t n_tokens, int64_t in_features) override {
    const size_t dot = linear_name.rfind('.');
    const int p = input_point_of_leader(dot == std::string::npos ? linear_name : linear_name.substr(dot + 1));
    if (p < 0) return;
    channels_[p] = in_features;
    rows_[p].insert(rows_[p].end(), x, x + n_tokens * in_features);
  }

  std::vector<float>& rows(int p) { return rows_[p]; }
  int64_t channels(int p) const { return channels_[p]; }
  void clear() {
    for (std::vector<float>& r : rows_) r.clear();
  }

 private:
  std::array<std::vector<float>, kInputPoints.size()> rows_;
  std::array<int64_t, kInputPoints.size()> channels_{};
};

// Sorts by descending |value| (stable: earlier layers first among equals) and keeps `max` entries.
void keep_largest(std::vector<MassiveActivation>& list, size_t max) {
  std::stable_sort(list.begin(), list.end(), [](const MassiveActivation& a, const MassiveActivation& b) {
    return std::fabs(a.value) > std::fabs(b.value);
  });
  if (list.size() > max) list.resize(max);
}

}  // namespace

int input_point_of_leader(const std::string& suffix) {
  for (size_t p = 0; p < kInputPoints.size(); ++p) {
    if (suffix == kInputPoints[p].leader) return static_cast<int>(p);
  }
  return -1;
}

Expected<ModelInspection> inspect_model(const ModelConfig& config, ModelWeights weights,
                                        const CalibrationSet& calibration, const InspectOptions& options,
                                        ThreadPool& pool) {
  const auto start = std::chrono::steady_clock::now();
  LB_RETURN_IF_ERROR(config.validate("inspect"));
  if (calibration.n_samples() == 0 || calibration.seq_len <= 0) return make_error("inspect: no calibration windows");
  if (weights.layers.size() != static_cast<size_t>(config.n_layers)) {
    return make_error("inspect: {} decoder layers in the weights, the config has {}", weights.layers.size(),
                      config.n_layers);
  }
  const int64_t n_rows = static_cast<int64_t>(calibration.tokens.size());
  LB_ASSIGN_OR_RETURN(std::vector<float> hidden,  // [n_samples, seq_len, dim]
                      embed_tokens(weights.token_embedding, config, calibration.tokens.data(), n_rows));
  weights.token_embedding = std::vector<float>();

  ModelInspection result;
  result.n_layers = config.n_layers;
  result.seq_len = calibration.seq_len;
  auto add_residual = [&](int layer) {
    MatrixStats s = matrix_stats(hidden.data(), n_rows, config.dim, options.top_k, true);
    std::vector<MassiveActivation> found = find_massive(hidden.data(), n_rows, config.dim, s.median_abs, layer);
    result.massive_total += static_cast<int64_t>(found.size());
    result.massive.insert(result.massive.end(), found.begin(), found.end());
    keep_largest(result.massive, options.max_massive);
    result.residual.push_back(std::move(s));
  };

  LayerRunner runner(config, calibration.seq_len);
  LayerInputCollector collector;
  ProgressBar progress("inspect", config.n_layers, options.progress);
  for (int i = 0; i < config.n_layers; ++i) {
    progress.update(i, fmt::format("layer {}/{}", i + 1, config.n_layers));
    add_residual(i);
    std::optional<Matrix> down;  // [dim, ffn] W·H, for the online wrapper
    if (options.online_down != nullptr) down = weights.layers[i].down_proj;
    LB_ASSIGN_OR_RETURN(DecoderBlock block,
                        DecoderBlock::create(config, i, std::move(weights.layers[i]), weights.rope_freq_factors));
    if (down) {
      LB_RETURN_IF_ERROR(block.replace_linear(
          "down_proj", std::make_unique<OnlineHadamardLinear>(std::make_unique<DenseLinear>(std::move(*down)),
                                                              *options.online_down)));
    }
    collector.clear();
    LB_RETURN_IF_ERROR(
        runner.run(block, hidden.data(), calibration.n_samples(), hidden.data(), pool, &collector));
    LayerInspection layer;
    layer.layer = i;
    for (size_t p = 0; p < kInputPoints.size(); ++p) {
      std::vector<float>& rows = collector.rows(static_cast<int>(p));
      const int64_t channels = collector.channels(static_cast<int>(p));
      if (channels == 0 || rows.size() != static_cast<size_t>(n_rows * channels)) {
        return make_error("inspect: layers.{}.{} saw {} values, expected {} tokens", i, kInputPoints[p].leader,
                          rows.size(), n_rows);
      }
      if (options.online_down != nullptr && std::string_view(kInputPoints[p].leader) == "down_proj") {
        options.online_down->apply(rows.data(), n_rows);  // what the wrapped down_proj multiplies
      }
      layer.inputs[p] = matrix_stats(rows.data(), n_rows, channels, options.top_k, false);
    }
    result.layers.push_back(std::move(layer));
  }
  add_residual(config.n_layers);
  progress.update(config.n_layers);
  progress.finish();

  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace lowbit
