#include "pipeline/linear_quantizer.h"

#include <limits>
#include <optional>

#include "quant/quantizers.h"

namespace lowbit {
namespace {

std::vector<float> hessian_diagonal(const std::vector<double>& h, int64_t cols) {
  std::vector<float> d(static_cast<size_t>(cols));
  for (int64_t j = 0; j < cols; ++j) d[j] = static_cast<float>(h[j * cols + j]);
  return d;
}

// gptq_error: GPTQ's objective tr(ΔW H ΔWᵀ) of the result, which GPTQ computes anyway (else untouched).
Expected<QuantizedWeight> run_method(const QuantRule& rule, const float* w, int64_t rows, int64_t cols,
                                     const std::vector<double>* hessian, ThreadPool* pool, int* dead_columns,
                                     std::optional<double>* gptq_error) {
  if (rule.method == QuantMethod::kNone) {
    QuantizedWeight q;
    q.format = rule.format;
    LB_ASSIGN_OR_RETURN(q.tensor, quantize_matrix(rule.format, w, rows, cols));
    return q;
  }
  LB_ASSIGN_OR_RETURN(WeightFormat format, rule_format(rule));
  switch (rule.method) {
    case QuantMethod::kRtn:
    case QuantMethod::kAwq: {  // AWQ: the scales are already folded into w; round with (weighted) clipping search
      RtnOptions o;
      o.search = rule.options.search;
      o.pool = pool;
      if (rule.options.importance || (rule.method == QuantMethod::kAwq && hessian != nullptr)) {
        if (hessian == nullptr) return make_error("option 'importance' needs calibration data (--calib)");
        o.importance = hessian_diagonal(*hessian, cols);
      }
      return quantize_rtn(format, w, rows, cols, o);
    }
    case QuantMethod::kGptq: {
      if (hessian == nullptr) return make_error("gptq needs calibration data (--calib)");
      GptqOptions o;
      o.damp_percent = rule.options.damp;
      o.block_size = rule.options.block_size;
      o.act_order = rule.options.act_order;
      o.static_groups = rule.options.static_groups;
      o.search = rule.options.search;
      o.importance = rule.options.importance;
      o.pool = pool;
      GptqStats stats;
      LB_ASSIGN_OR_RETURN(QuantizedWeight q, quantize_gptq(format, w, rows, cols, *hessian, o, &stats));
      *dead_columns = stats.dead_columns;
      *gptq_error = stats.proxy_error;
      return q;
    }
    case QuantMethod::kEasyQuant: {
      EasyQuantOptions o;
      o.outlier_fraction = rule.options.outlier_fraction;
      if (format.block_format() == nullptr) return make_error("easyquant needs a scaled format, not {}", rule.format);
      return quantize_easyquant(*format.block_format(), w, rows, cols, o);
    }
    case QuantMethod::kNone: break;
  }
  return make_error("unhandled method {}", quant_method_name(rule.method));
}

}  // namespace

double relative_weight_error(const float* w, const float* q, int64_t n) {
  double num = 0.0, den = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(w[i]) - static_cast<double>(q[i]);
    num += d * d;
    den += static_cast<double>(w[i]) * static_cast<double>(w[i]);
  }
  if (den == 0.0) return num == 0.0 ? 0.0 : std::numeric_limits<double>::infinity();
  return num / den;
}

namespace {

// error / tr(W H Wᵀ); 0 / 0 is 0 and a non-zero error over zero energy infinite.
double relative_to_output_energy(double error, const float* w, int64_t rows, int64_t cols,
                                 const std::vector<double>& hessian) {
  const std::vector<float> zero(static_cast<size_t>(rows * cols), 0.0f);
  const double energy = hessian_proxy_error(w, zero.data(), rows, cols, hessian);
  if (energy == 0.0) return error == 0.0 ? 0.0 : std::numeric_limits<double>::infinity();
  return error / energy;
}

}  // namespace

double relative_output_error(const float* w, const float* q, int64_t rows, int64_t cols,
                             const std::vector<double>& hessian) {
  return relative_to_output_energy(hessian_proxy_error(w, q, rows, cols, hessian), w, rows, cols, hessian);
}

Expected<LinearQuantResult> quantize_linear(const QuantRule& matched, const std::string& name, const float* w,
                                            int64_t rows, int64_t cols, const std::vector<double>* hessian,
                                            const std::vector<double>* input_mean, ThreadPool* pool) {
  LB_ASSIGN_OR_RETURN(const QuantRule rule, resolve_rule(matched, name, rows, cols));
  const std::string where =
      fmt::format("{} ({} {}, {})", name, quant_method_name(rule.method), rule.format, rule.label());
  if (hessian != nullptr && hessian->size() != static_cast<size_t>(cols * cols)) {
    return make_error("{}: H has {} values, expected [{}, {}]", where, hessian->size(), cols, cols);
  }
  LinearQuantResult r;
  r.method = rule.method;
  r.fallback_from = rule.fallback_from;
  std::optional<double> gptq_error;
  auto q = run_method(rule, w, rows, cols, hessian, pool, &r.dead_columns, &gptq_error);
  if (!q.ok()) return q.status().with_context(where);
  r.weight = std::move(q).value();
  if (rule.options.adaquant_steps > 0) {
    if (hessian == nullptr) return make_error("{}: adaquant_steps needs calibration data (--calib)", where);
    LB_ASSIGN_OR_RETURN(WeightFormat format, rule_format(rule));
    if (format.block_format() == nullptr) {
      return make_error("{}: adaquant refines scaled formats, not {}", where, rule.format);
    }
    AdaQuantOptions o;
    o.steps = rule.options.adaquant_steps;
    o.scales = rule.options.adaquant_scales;
    o.damp = rule.options.damp;
    AdaQuantStats stats;
    auto refined = adaquant_refine(*format.block_format(), r.weight, w, rows, cols, *hessian, o, &stats, pool);
    if (!refined.ok()) return refined.status().with_context(where);
    r.weight = std::move(refined).value();
    r.adaquant = stats;
    if (!stats.kept_start) gptq_error.reset();  // no longer the objective of the stored weight
  }
  if (rule.options.lorc_rank > 0) {
    const int rank = static_cast<int>(std::min<int64_t>(rule.options.lorc_rank, std::min(rows, cols)));
    LB_RETURN_IF_ERROR(add_lowrank_correction(r.weight, w, rank, rule.options.lorc_format).with_context(where));
  }
  std::vector<float> deq(static_cast<size_t>(rows * cols));  // [rows, cols]
  LB_RETURN_IF_ERROR(dequantize_weight(r.weight, deq.data()).with_context(where));
  r.weight_rel_error = relative_weight_error(w, deq.data(), rows * cols);
  if (rule.options.bias_correction) {
    if (input_mean == nullptr) return make_error("{}: bias_correction needs calibration data (--calib)", where);
    if (input_mean->size() != static_cast<size_t>(cols)) {
      return make_error("{}: input mean has {} values, expected {}", where, input_mean->size(), cols);
    }
    r.bias_delta = bias_correction(w, deq.data(), rows, cols, *input_mean);
  }
  if (hessian != nullptr) {
    // GPTQ's own objective is the numerator when nothing was added after it (LoRC changes Ŵ).
    r.output_error = gptq_error && rule.options.lorc_rank == 0 ? *gptq_error
                                                                 : hessian_proxy_error(w, deq.data(), rows, cols, *hessian);
    r.output_rel_error = relative_to_output_energy(*r.output_error, w, rows, cols, *hessian);
  }
  return r;
}

}  // namespace lowbit
