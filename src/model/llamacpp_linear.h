// A linear layer computed the way llama.cpp's CPU backend computes a matrix
// product with a GGUF weight (`ppl --arith llamacpp`): the input rows are first
// converted to the activation type llama.cpp pairs with the weight's type
// (formats/ggml_activations.h: Q8_0, Q8_1, Q8_K, F16 or BF16), then multiplied by
// the dequantized weight. For Q4_1 / Q5_1 weights (Q8_1 activations) llama.cpp
// takes each weight block's min term from the activation block's stored sum s
// rather than from the rounded values, which this layer adds:
//   y[t, r] = Σ_c x̂[t, c]·Ŵ[r, c] + Σ_b m[r, b]·e[t, b],   e = s − fp16(d)·Σq
// with m [out, in / 32] the weight's block minimums and e [n_tokens, in / 32] the
// Q8_1 block residuals (ggml_q8_1_sum_residuals). What remains different from
// llama.cpp is FP32 summation order.
//
// Wraps any linear (DenseLinear of a GGUF file's dequantized weight, a packed
// linear of a lowbit file): the wrapper keeps no state between calls. F32
// weights are left as they are (llama.cpp multiplies those in FP32 too).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/linear.h"
#include "model/llama_model.h"
#include "model/model_source.h"
#include "quant/act_quant.h"

namespace lowbit {

class LlamaCppLinear : public Linear {
 public:
  // storage.type must have an activation type other than F32; storage.block_mins
  // must be [out, in / 32] for Q4_1 / Q5_1 and empty otherwise.
  static Expected<std::unique_ptr<LlamaCppLinear>> create(std::unique_ptr<Linear> inner,
                                                          const LinearGgmlStorage& storage);
  // What create() checks, for a layer [out, in].
  static Status check(const LinearGgmlStorage& storage, int64_t out, int64_t in);

  int64_t in_features() const override { return inner_->in_features(); }
  int64_t out_features() const override { return inner_->out_features(); }
  // A non-finite input gives a NaN output (the forward seam returns no status).
  void forward(const float* x, int64_t n_tokens, float* y, ThreadPool& pool) const override;
  uint64_t weight_bytes() const override { return inner_->weight_bytes(); }
  // "<inner> · llama.cpp q4_1 x q8_1".
  std::string describe() const override;

  const Linear& inner() const { return *inner_; }

 private:
  LlamaCppLinear(std::unique_ptr<Linear> inner, GgmlType type, ActQuantizer rounding, std::vector<float> mins)
      : inner_(std::move(inner)), type_(type), rounding_(std::move(rounding)), mins_(std::move(mins)) {}

  std::unique_ptr<Linear> inner_;
  GgmlType type_;
  ActQuantizer rounding_;    // the activation type as an act spec (quant/act_quant.h llamacpp_act_spec)
  std::vector<float> mins_;  // [out, in / 32] Q4_1 / Q5_1 block minimums; empty otherwise
};

// What attach_llamacpp_arith did, for --verbose: linears per "weight type x
// activation type" ("q4_1 x q8_1"), and "f32 (exact)" / "no GGUF type (exact)".
using LlamaCppArithReport = std::map<std::string, int>;

// Wraps every linear of `model` whose storage has an activation type other than
// F32 in a LlamaCppLinear. Errors name the linear.
Status attach_llamacpp_arith(LlamaModel& model, const std::map<std::string, LinearGgmlStorage>& storage,
                             LlamaCppArithReport* report = nullptr);

}  // namespace lowbit
