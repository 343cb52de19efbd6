// Observers that complement ActivationStats in the quantization pipeline: a
// sampler keeping actual input rows (AWQ's scale search measures ‖X Wᵀ − X Qᵀ‖ on
// them) and a fan-out that feeds one forward pass to several observers.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/communicator.h"
#include "core/status.h"
#include "model/linear.h"

namespace lowbit {

// Keeps every `stride`-th token (counted over all calls) of the inputs of the
// named linears, at most max_rows of them. Names are reduced to their shared-input
// leader (activation_stats.h), so "layers.0.k_proj" captures the q/k/v input once.
// first_token: the index of the first token observed among all the calibration's
// (a rank's shard starts there, docs/MPI.md), so the ranks pick the tokens one
// process would, and gather() puts them back in that order.
class RowSampler : public ActivationObserver {
 public:
  RowSampler(const std::vector<std::string>& names, int64_t stride, int64_t max_rows, int64_t first_token = 0);

  // Every rank's rows in rank order (= token order for contiguous shards), at most
  // max_rows; call on every rank after the pass.
  Status gather(Communicator& comm);

  void observe(const std::string& linear_name, const float* x, int64_t n_tokens, int64_t in_features) override;

  struct Rows {
    int64_t in_features = 0;
    int64_t n_rows = 0;
    int64_t tokens_seen = 0;
    std::vector<float> data;  // [n_rows, in_features]
  };
  // Null when `linear_name`'s input was not selected or not seen.
  const Rows* find(const std::string& linear_name) const;

 private:
  int64_t stride_;
  int64_t max_rows_;
  int64_t first_token_;
  std::map<std::string, Rows> rows_;  // by leader name; selected ones exist from the start
};

// Calls every observer in order.
class ObserverFanout : public ActivationObserver {
 public:
  explicit ObserverFanout(std::vector<ActivationObserver*> observers) : observers_(std::move(observers)) {}
  void observe(const std::string& linear_name, const float* x, int64_t n_tokens, int64_t in_features) override {
    for (ActivationObserver* o : observers_) o->observe(linear_name, x, n_tokens, in_features);
  }

 private:
  std::vector<ActivationObserver*> observers_;
};

// Forwards to `inner` and tells the block that its output is not needed
// (ActivationObserver::needs_block_output): for passes that only collect statistics.
class InputsOnlyObserver : public ActivationObserver {
 public:
  explicit InputsOnlyObserver(ActivationObserver& inner) : inner_(inner) {}
  void observe(const std::string& linear_name, const float* x, int64_t n_tokens, int64_t in_features) override {
    inner_.observe(linear_name, x, n_tokens, in_features);
  }
  bool needs_block_output() const override { return false; }

 private:
  ActivationObserver& inner_;
};

}  // namespace lowbit
