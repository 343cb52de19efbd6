// One weight matrix quantized as a recipe rule says (pipeline/recipe.h), with the
// errors the pipeline reports:
//   weight error   ‖W − Ŵ‖²_F / ‖W‖²_F
//   output error   ‖X Wᵀ − X Ŵᵀ‖²_F / ‖X Wᵀ‖²_F = tr(ΔW H ΔWᵀ) / tr(W H Wᵀ),
//                  H = XᵀX over the calibration tokens, ΔW = W − Ŵ
// (Ŵ = the dequantized weight, outliers and low-rank correction included).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "pipeline/recipe.h"
#include "quant/adaquant.h"
#include "quant/quantized_weight.h"

namespace lowbit {

struct LinearQuantResult {
  QuantizedWeight weight;                  // weight.format: the format used, a fallback's where one was taken
  QuantMethod method = QuantMethod::kNone;  // the method used (none where the fallback is fp32/fp16/bf16)
  std::string fallback_from;               // the rule's format when a fallback replaced it, else ""
  double weight_rel_error = 0.0;
  std::optional<double> output_error;      // tr(ΔW H ΔWᵀ), when H was given
  std::optional<double> output_rel_error;  // when H was given
  int dead_columns = 0;                    // GPTQ: inputs never active in calibration
  // AdaQuant (rule option adaquant_steps): weights and scale groups it changed, and
  // whether it kept the method's result (no lower error).
  std::optional<AdaQuantStats> adaquant;
  // Bias correction (rule option bias_correction): (W − Ŵ) x̄ [rows], to be added to
  // the linear's bias; empty when not asked for.
  std::vector<float> bias_delta;
};

// w: [rows, cols]. hessian: [cols, cols] H = Σ_t x_t x_tᵀ of the input, or null
// (required by gptq and rtn with importance; awq uses diag(H) to weight its
// clipping search when given). The rule is first resolved for the shape
// (resolve_rule: its fallback where its format cannot hold it). `name` goes into errors.
// After the method: AdaQuant (needs H), LoRC, then bias correction, which needs
// input_mean [cols], the mean of the calibration inputs x̄ (the output error
// reported is of Ŵ alone: the bias lowers ‖X Wᵀ − X Ŵᵀ − 1 bᵀ‖² by n_tokens ‖b‖²).
// pool: AdaQuant's rows, and a format's encoder where it uses one (trellis codes), run on it
// (null: the calling thread).
Expected<LinearQuantResult> quantize_linear(const QuantRule& rule, const std::string& name, const float* w,
                                            int64_t rows, int64_t cols, const std::vector<double>* hessian,
                                            const std::vector<double>* input_mean = nullptr,
                                            ThreadPool* pool = nullptr);

// ‖w − q‖² / ‖w‖² over n values, in double; 0 when w is all zero and q == w.
double relative_weight_error(const float* w, const float* q, int64_t n);
// tr((W − Q) H (W − Q)ᵀ) / tr(W H Wᵀ); w, q: [rows, cols], h: [cols, cols].
double relative_output_error(const float* w, const float* q, int64_t rows, int64_t cols,
                             const std::vector<double>& hessian);

}  // namespace lowbit
