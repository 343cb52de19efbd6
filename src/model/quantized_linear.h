// A linear layer whose weight is stored quantized (quant/quantized_weight.h).
// QuantizedLinear dequantizes the weight to FP32 once, when it is built, and runs
// the FP32 product (the reference runtime, and what the quantization pipeline
// uses); it keeps the packed weight so weight_bytes() and describe() report what
// is stored (format, bits per weight). attach_quantized_linears builds a
// PackedLinear (model/packed_linear.h) instead whenever a packed kernel exists
// for the format (model/packed_convert.h), so the FP32 copy is never made.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/linear.h"
#include "model/llama_model.h"
#include "model/packed_linear.h"
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

struct AttachOptions {
  bool packed = true;     // PackedLinear where a packed kernel exists; false: always QuantizedLinear
  Isa isa = active_isa(); // kernels for this level (LOWBIT_ISA forces it process-wide)
  // Quantize activations per token to INT8 and run the integer kernels (W8A8 for
  // int8_pc, W4A8 for integer 4-bit groups) where the packed layout has one; other
  // layers keep FP32 activations. A runtime choice, not stored in the model.
  bool int8_activations = false;
};

// What attach_quantized_linears chose: linears per describe() kind, for --verbose.
struct AttachReport {
  std::map<std::string, int> packed;       // kernel name ("lut4/avx512") -> number of linears
  std::map<std::string, int> dequantized;  // reason there is no packed kernel -> number of linears
};

// The activations a packed layer of w runs with under `options`: INT8 where
// options.int8_activations and the kernel table has an INT8 entry for w, else FP32.
LinearActivation runtime_activation(const PackedMatrix& w, const AttachOptions& options);

// The runtime linear for one quantized weight (PackedLinear or QuantizedLinear).
// reason: set to why no packed kernel was used ("" when one was).
Expected<std::unique_ptr<Linear>> make_quantized_linear(QuantizedWeight weight, std::vector<float> bias,
                                                        const AttachOptions& options, std::string* reason = nullptr);

// `data` [rows, cols] stored as "fp16" when every value is exact in FP16 (a table
// the file stores in FP16 that a loader widened to FP32), nullopt otherwise.
std::optional<QuantizedWeight> exact_fp16_weight(const float* data, int64_t rows, int64_t cols);

// Replaces each named linear of `model` by the runtime linear of its packed form,
// keeping the current layer's bias. Errors name the linear. With packed kernels
// on and a non-empty map, a dense lm_head whose values are all exact in FP16 (a
// tied head of an FP16-stored embedding) becomes a packed FP16 linear too.
Status attach_quantized_linears(LlamaModel& model, std::map<std::string, QuantizedWeight> linears,
                                const AttachOptions& options = {}, AttachReport* report = nullptr);

}  // namespace lowbit
