// A linear layer whose weight is stored quantized (quant/quantized_weight.h).
// This version dequantizes the weight to FP32 once, when it is built, and runs
// the FP32 product; it keeps the packed weight so weight_bytes() and describe()
// report what is stored (format, bits per weight). Kernels that run on the
// packed codes are a separate piece of work.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/linear.h"
#include "model/llama_model.h"
#include "quant/quantized_weight.h"

namespace lowbit {

class QuantizedLinear : public Linear {
 public:
  // bias: [rows] or empty; kept in FP32.
  static Expected<std::unique_ptr<QuantizedLinear>> create(QuantizedWeight weight, std::vector<float> bias);

  int64_t in_features() const override { return dense_.in_features(); }
  int64_t out_features() const override { return dense_.out_features(); }
  void forward(const float* x, int64_t n_tokens, float* y, ThreadPool& pool) const override {
    dense_.forward(x, n_tokens, y, pool);
  }
  // Packed bytes (codes, scales, outliers, low-rank factors) + the FP32 bias.
  uint64_t weight_bytes() const override;
  // "int4_g128_asym 4.28 bpw" (+ " +lorc8", " +N outliers").
  std::string describe() const override;

  const QuantizedWeight& weight() const { return weight_; }
  // The dequantized weight [out, in] the forward pass uses.
  const Matrix& dequantized() const { return dense_.matrix(); }

 private:
  QuantizedLinear(QuantizedWeight weight, Matrix dequantized)
      : weight_(std::move(weight)), dense_(std::move(dequantized)) {}

  QuantizedWeight weight_;
  DenseLinear dense_;
};

// Replaces each named linear of `model` by a QuantizedLinear of its packed form,
// keeping the current layer's bias. Errors name the linear.
Status attach_quantized_linears(LlamaModel& model, std::map<std::string, QuantizedWeight> linears);

}  // namespace lowbit
