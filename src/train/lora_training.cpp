#include "train/lora_training.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "train/decoder_backprop.h"

namespace lowbit {
namespace {

// Adam's update of one parameter array p from its gradient g and moments m, v.
void adam_update(std::vector<float>& p, const std::vector<float>& g, std::vector<float>& m, std::vector<float>& v,
                 const LoraTrainOptions& o, double lr, int step) {
  const double c1 = 1.0 - std::pow(o.beta1, step + 1), c2 = 1.0 - std::pow(o.beta2, step + 1);
  for (size_t i = 0; i < p.size(); ++i) {
    m[i] = o.beta1 * m[i] + (1.0f - o.beta1) * g[i];
    v[i] = o.beta2 * v[i] + (1.0f - o.beta2) * g[i] * g[i];
    p[i] -= static_cast<float>(lr * (m[i] / c1) / (std::sqrt(v[i] / c2) + o.eps));
  }
}

}  // namespace

double lora_learning_rate(const LoraTrainOptions& o, int t) {
  const int warmup = std::max(1, o.steps / 20);
  if (t < warmup) return o.lr * static_cast<double>(t + 1) / warmup;
  return o.lr * static_cast<double>(o.steps - t) / std::max(1, o.steps - warmup + 1);
}

Expected<double> lora_mean_loss(const ModelConfig& c, const ModelWeights& base, const LoraAdapters& lora,
                                const std::vector<int32_t>& windows, int seq_len) {
  const int64_t n = static_cast<int64_t>(windows.size()) / seq_len;
  if (n == 0) return make_error("lora training: no windows");
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    LB_ASSIGN_OR_RETURN(const double loss, lora_window_loss(c, base, lora, windows.data() + i * seq_len, seq_len, nullptr));
    sum += loss;
  }
  return sum / static_cast<double>(n);
}

Expected<LoraAdapters> train_lora(const ModelConfig& c, const ModelWeights& base, const std::vector<int32_t>& windows,
                                  int seq_len, const LoraTrainOptions& o, LoraTrainReport* report,
                                  const std::function<void(int, double)>& progress) {
  if (o.rank < 1) return make_error("lora training: rank {} (need >= 1)", o.rank);
  if (o.steps < 1 || o.windows_per_step < 1) {
    return make_error("lora training: {} steps of {} windows (need >= 1 each)", o.steps, o.windows_per_step);
  }
  if (!(o.lr > 0.0f) || !std::isfinite(o.lr)) return make_error("lora training: learning rate {} (need > 0)", o.lr);
  if (seq_len < 2 || windows.size() < static_cast<size_t>(seq_len) || windows.size() % seq_len != 0) {
    return make_error("lora training: {} tokens are not whole windows of {} (>= 2) tokens", windows.size(), seq_len);
  }
  const auto start = std::chrono::steady_clock::now();
  const int64_t n_windows = static_cast<int64_t>(windows.size()) / seq_len;
  LoraAdapters lora = make_lora_adapters(c, o.rank, o.alpha, o.seed, o.target);
  LoraAdapters m = zero_lora_like(lora), v = zero_lora_like(lora);
  int64_t next = 0;
  for (int step = 0; step < o.steps; ++step) {
    LoraAdapters grads = zero_lora_like(lora);
    double loss = 0.0;
    for (int w = 0; w < o.windows_per_step; ++w, next = (next + 1) % n_windows) {
      LB_ASSIGN_OR_RETURN(const double l, lora_window_loss(c, base, lora, windows.data() + next * seq_len, seq_len, &grads));
      loss += l;
    }
    loss /= o.windows_per_step;
    // The windows' mean: scale the summed gradient once.
    const float inv = 1.0f / static_cast<float>(o.windows_per_step);
    const double lr = lora_learning_rate(o, step);
    for (size_t l = 0; l < lora.layers.size(); ++l) {
      for (size_t k = 0; k < 7; ++k) {
        LoraMatrix& g = grads.layers[l][k];
        for (float& x : g.a) x *= inv;
        for (float& x : g.b) x *= inv;
        adam_update(lora.layers[l][k].a, g.a, m.layers[l][k].a, v.layers[l][k].a, o, lr, step);
        adam_update(lora.layers[l][k].b, g.b, m.layers[l][k].b, v.layers[l][k].b, o, lr, step);
      }
    }
    if (!std::isfinite(loss)) return make_error("lora training: the loss is {} at step {}", loss, step);
    if (report != nullptr) report->step_loss.push_back(loss);
    if (progress) progress(step + 1, loss);
  }
  if (report != nullptr) report->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return lora;
}

}  // namespace lowbit
