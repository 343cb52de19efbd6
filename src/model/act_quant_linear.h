// A linear layer whose input activations are fake-quantized (quant/act_quant.h)
// before the inner linear runs: y = inner(Q(x)). The quantized copy of x lives
// in a buffer of the call, so one wrapper may serve concurrent callers and the
// layer keeps no state between calls. Wrapping order with the other wrappers:
// an online rotation (down_proj's Hadamard) sits outside, so the quantizer sees
// the rotated input the kernel would see; the weight (dense or QuantizedLinear)
// is inside.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "core/status.h"
#include "kernels/cpu_features.h"
#include "model/linear.h"
#include "model/llama_model.h"
#include "quant/act_quant.h"

namespace lowbit {

class ActQuantLinear : public Linear {
 public:
  // static_threshold: T of a per-tensor static spec (> 0, finite); ignored otherwise.
  static Expected<std::unique_ptr<ActQuantLinear>> create(std::unique_ptr<Linear> inner, ActQuantizer quantizer,
                                                          float static_threshold);

  int64_t in_features() const override { return inner_->in_features(); }
  int64_t out_features() const override { return inner_->out_features(); }
  // A non-finite input gives a NaN output (the forward seam returns no status).
  void forward(const float* x, int64_t n_tokens, float* y, ThreadPool& pool) const override;
  uint64_t weight_bytes() const override { return inner_->weight_bytes() + (quantizer_.spec().is_static() ? 4 : 0); }
  // "<inner> · act int8 tensor" (+ " clip 0.9").
  std::string describe() const override;

  const Linear& inner() const { return *inner_; }
  const ActQuantizer& quantizer() const { return quantizer_; }
  float static_threshold() const { return threshold_; }

 private:
  ActQuantLinear(std::unique_ptr<Linear> inner, ActQuantizer quantizer, float threshold)
      : inner_(std::move(inner)), quantizer_(std::move(quantizer)), threshold_(threshold) {}

  std::unique_ptr<Linear> inner_;
  ActQuantizer quantizer_;
  float threshold_;
};

struct ActAttachOptions {
  // A packed linear whose layout and act spec have an exact integer kernel
  // (PackedLinear::integer_act_unsupported) runs it instead of the simulation.
  // false: always simulate (the reference the integer path is tested against).
  bool integer_kernels = true;
  Isa isa = active_isa();
};

// What attach_act_quantizers chose, for --verbose.
struct ActAttachReport {
  std::map<std::string, int> integer;    // kernel name ("w8a8/avx512vnni") -> number of linears
  std::map<std::string, int> simulated;  // "act int8 tensor: <why no integer kernel>" -> number of linears
};

// For each named linear of `model`: replaces a packed linear by one over the same
// weight that runs the integer activation kernel where one computes the spec
// exactly (PackedLinear::with_activation), else wraps the current
// implementation (whatever it is) in an ActQuantLinear. Errors name the linear.
Status attach_act_quantizers(LlamaModel& model, const std::map<std::string, ActQuantAttachment>& linears,
                             const ActAttachOptions& options = {}, ActAttachReport* report = nullptr);

}  // namespace lowbit
