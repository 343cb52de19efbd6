// Statistics of the inputs of linear layers, gathered through the model's
// ActivationObserver seam while calibration text runs through the model:
//   H_j,k     = Σ_t x_tj · x_tk           [in, in]  (GPTQ's Hessian 2XᵀX up to the factor 2/n)
//   mean|x_j| = Σ_t |x_tj| / n_tokens     [in]      (AWQ's activation scale s = mean|x|^α)
//   max|x_j|  = max_t |x_tj|               [in]      (SmoothQuant's channel range)
// summed over every token t the layer received.
//
// q/k/v read the same normed input, and so do gate/up: their statistics are kept
// once, under the first of the group ("layers.{i}.q_proj", "layers.{i}.gate_proj"),
// and accumulated when that leader is observed (the forward pass calls the leader
// on the same input as its siblings). H is symmetric and accumulated with
// ssyrk/dsyrk on its upper triangle.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/linear.h"

namespace lowbit {

enum class HessianPrecision {
  kNone,  // only mean|x| and max|x| (AWQ, SmoothQuant): no [in, in] memory
  kFp32,  // float sums (ssyrk): half the memory; relative error grows like n_tokens · 2^-24
  kFp64,  // double sums (dsyrk) of the float inputs
};

struct ActivationStatsOptions {
  HessianPrecision hessian = HessianPrecision::kFp64;
  // Linear names to collect (a shared input is collected when any layer reading it
  // is named), to bound memory to a few layers; empty: every linear layer.
  std::vector<std::string> names;
};

// The accumulated statistics of one distinct linear input.
struct InputStats {
  std::string key;  // leader name, e.g. "layers.0.q_proj" for q/k/v
  int64_t in_features = 0;
  int64_t n_tokens = 0;
  std::vector<double> abs_sum;  // [in] Σ_t |x_tj|
  std::vector<float> abs_max;   // [in] max_t |x_tj|
  HessianPrecision precision = HessianPrecision::kNone;
  std::vector<float> h_f32;   // [in, in] upper triangle (k >= j) when kFp32
  std::vector<double> h_f64;  // [in, in] upper triangle (k >= j) when kFp64

  std::vector<double> mean_abs() const;  // [in] abs_sum / n_tokens
  // H = Σ_t x_t x_tᵀ as a full symmetric [in, in] matrix; empty when kNone.
  std::vector<double> hessian() const;
  // The same H, built in the accumulator's own storage and moved out (kFp64: the
  // lower triangle mirrored in place), leaving h_f32/h_f64 empty: no second
  // [in, in] buffer, which for a 5632-wide input (TinyLlama's down_proj) is 254 MB.
  std::vector<double> take_hessian();
};

// The leader of the group of linears reading the same input as `linear_name`:
// "layers.{i}.k_proj" and "v_proj" -> "layers.{i}.q_proj", "layers.{i}.up_proj" ->
// "layers.{i}.gate_proj"; any other name is its own leader.
std::string shared_input_key(const std::string& linear_name);

class ActivationStats : public ActivationObserver {
 public:
  explicit ActivationStats(ActivationStatsOptions options = {});

  void observe(const std::string& linear_name, const float* x, int64_t n_tokens, int64_t in_features) override;

  // The statistics of the input `linear_name` reads (its group's); null when that
  // input was not selected or not observed yet.
  const InputStats* find(const std::string& linear_name) const;
  const std::map<std::string, InputStats>& inputs() const { return inputs_; }

  // Every linear observed, collected or not: its input width and tokens seen.
  struct Seen {
    int64_t in_features = 0;
    int64_t n_tokens = 0;
  };
  const std::map<std::string, Seen>& seen() const { return seen_; }

  // observe() cannot return an error: the first inconsistency (a linear observed
  // with two input widths) is kept here and later observations are ignored.
  const Status& status() const { return status_; }

  // InputStats::take_hessian of the input `linear_name` reads, then its statistics
  // are freed; empty when that input was not collected.
  std::vector<double> take_hessian(const std::string& linear_name);
  // Frees the statistics of one input once a quantizer has used them.
  void erase(const std::string& linear_name);
  void clear();

 private:
  bool selected(const std::string& key) const;
  void accumulate(InputStats& s, const float* x, int64_t n_tokens);

  ActivationStatsOptions options_;
  std::set<std::string> selected_keys_;  // leaders of options_.names
  std::map<std::string, InputStats> inputs_;
  std::map<std::string, Seen> seen_;
  std::vector<double> x_f64_;  // [<= 256 tokens, in] conversion buffer for dsyrk
  Status status_;
};

}  // namespace lowbit
