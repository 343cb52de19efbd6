// Statistics of the inputs of linear layers, gathered through the model's
// ActivationObserver seam while calibration text runs through the model:
//   H_j,k     = Σ_t x_tj · x_tk           [in, in]  (GPTQ's Hessian 2XᵀX up to the factor 2/n)
//   mean|x_j| = Σ_t |x_tj| / n_tokens     [in]      (AWQ's activation scale s = mean|x|^α)
//   mean x_j  = Σ_t x_tj / n_tokens       [in]      (bias correction, quant/adaquant.h)
//   max|x_j|  = max_t |x_tj|               [in]      (SmoothQuant's channel range)
// summed over every token t the layer received.
//
// q/k/v read the same normed input, and so do gate/up: their statistics are kept
// once, under the first of the group ("layers.{i}.q_proj", "layers.{i}.gate_proj"),
// and accumulated when that leader is observed (the forward pass calls the leader
// on the same input as its siblings). H is symmetric and accumulated with
// ssyrk/dsyrk on its upper triangle.
//
// Shards (docs/MPI.md): floating-point sums depend on their order, so the
// calibration windows may be split into S contiguous shards whose sums (H, Σ|x|)
// are accumulated separately and added in shard order: ((P_0 + P_1) + …) + P_{S-1}.
// `mpirun -np S` gives each rank one shard and reduce() adds them over the
// communicator in that order; one process given the same shard_starts adds them
// locally, and both produce the same bits. Maxima and token counts are exact.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/communicator.h"
#include "core/thread_pool.h"
#include "kernels/gemm_bf16.h"
#include "core/status.h"
#include "model/linear.h"

namespace lowbit {

enum class HessianPrecision {
  kNone,  // only mean|x| and max|x| (AWQ, SmoothQuant): no [in, in] memory
  kFp32,  // float sums (ssyrk): half the memory; relative error grows like n_tokens · 2^-24
  kFp64,  // double sums (dsyrk) of the float inputs
  // Inputs rounded to BF16, each observation's (one calibration window's) products
  // summed in FP32 by the BF16 kernel (kernels/gemm_bf16.h), those sums added in
  // double: the calibration's BF16 arithmetic (--calib-arith bf16), 2x the FP32 rate.
  kBf16,
};
// The products of the calibration forward (the layer being calibrated and the quantized
// layer making the next one's inputs): FP32, or BF16 operands with FP32 sums
// (model/bf16_linear.h, model/attention_bf16.h), which two Zen 4 cores run at twice
// the FP32 rate. Under kBf16 the statistics' H is HessianPrecision::kBf16.
enum class CalibArithmetic { kFp32, kBf16 };

// "none", "fp32", "fp64", "bf16".
const char* hessian_precision_name(HessianPrecision p);
// Whether the sums are kept in double (h_f64): kFp64 and kBf16.
inline bool sums_in_double(HessianPrecision p) { return p == HessianPrecision::kFp64 || p == HessianPrecision::kBf16; }

struct ActivationStatsOptions {
  HessianPrecision hessian = HessianPrecision::kFp64;
  // Linear names to collect (a shared input is collected when any layer reading it
  // is named), to bound memory to a few layers; empty: every linear layer.
  std::vector<std::string> names;
  ThreadPool* pool = nullptr;  // threads of the kBf16 products; null: the calling thread
  // Whether Σ|x| and max|x| are kept (AWQ, SmoothQuant, static thresholds); off for an
  // observer whose caller takes only H (GPTQ's statistics pass): two passes over every
  // observed input saved. Off, abs_sum, sum and abs_max stay zero.
  bool channel_stats = true;
};

// The accumulated statistics of one distinct linear input.
struct InputStats {
  std::string key;  // leader name, e.g. "layers.0.q_proj" for q/k/v
  int64_t in_features = 0;
  int64_t n_tokens = 0;
  std::vector<double> abs_sum;  // [in] Σ_t |x_tj|
  std::vector<double> sum;      // [in] Σ_t x_tj
  std::vector<float> abs_max;   // [in] max_t |x_tj|
  HessianPrecision precision = HessianPrecision::kNone;
  std::vector<float> h_f32;   // [in, in] upper triangle (k >= j) when kFp32
  std::vector<double> h_f64;  // [in, in] upper triangle (k >= j) when kFp64 or kBf16

  std::vector<double> mean_abs() const;  // [in] abs_sum / n_tokens
  std::vector<double> mean() const;      // [in] sum / n_tokens
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
  // shard_starts: token counts (per input, in observation order, ascending, > 0) at
  // which a new shard of the sums begins; empty: one shard. An observation that
  // straddles one is split there (its dsyrk chunks then differ from a rank's: feed
  // whole windows).
  explicit ActivationStats(ActivationStatsOptions options = {}, std::vector<int64_t> shard_starts = {});

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

  // Completes the sums after the last observation: the last local shard is added
  // (shard_starts), then every rank's statistics are combined (sums in rank order,
  // maxima, token counts), so every rank holds those of all the windows. Every rank
  // must have observed the same inputs; call it on every rank, after every pass.
  Status reduce(Communicator& comm);

  // InputStats::take_hessian of the input `linear_name` reads, then its statistics
  // are freed; empty when that input was not collected.
  std::vector<double> take_hessian(const std::string& linear_name);
  // Frees the statistics of one input once a quantizer has used them.
  void erase(const std::string& linear_name);
  void clear();

 private:
  // The sums of the shard being observed, when it is not the first.
  struct Partial {
    int shard = 0;
    std::vector<double> abs_sum;  // [in]
    std::vector<double> sum;      // [in]
    std::vector<float> h_f32;     // [in, in] upper triangle
    std::vector<double> h_f64;    // [in, in] upper triangle
  };
  bool selected(const std::string& key) const;
  void for_column_ranges(int64_t n, const std::function<void(int64_t, int64_t)>& fn);
  void accumulate(InputStats& s, const float* x, int64_t n_tokens);
  void add_sums(const float* x, int64_t n_tokens, int64_t in, HessianPrecision precision, double* abs_sum,
                double* sum, float* h_f32, double* h_f64);
  void fold(InputStats& s, Partial& p);

  ActivationStatsOptions options_;
  std::vector<int64_t> shard_starts_;
  std::set<std::string> selected_keys_;  // leaders of options_.names
  std::map<std::string, InputStats> inputs_;
  std::map<std::string, Seen> seen_;
  std::map<std::string, Partial> partials_;  // by leader, while a shard after the first is observed
  std::vector<double> x_f64_;  // [<= 256 tokens, in] conversion buffer for dsyrk
  Bf16Panels x_bf16_;          // kBf16: the observation's X [n_tokens, in] as B panels
  std::vector<float> h_window_;  // kBf16: [in, in] its FP32 XᵀX (upper triangle)
  Status status_;
};

}  // namespace lowbit
