#include "model/act_quant_linear.h"

#include <cmath>
#include <limits>
#include <vector>

#include "model/packed_linear.h"

namespace lowbit {

Expected<std::unique_ptr<ActQuantLinear>> ActQuantLinear::create(std::unique_ptr<Linear> inner,
                                                                 ActQuantizer quantizer, float static_threshold) {
  if (inner == nullptr) return make_error("act-quantized linear: no inner linear");
  if (quantizer.spec().is_static() && !(static_threshold > 0.0f && std::isfinite(static_threshold))) {
    return make_error("act-quantized linear: per-tensor static threshold {} must be positive and finite",
                      static_threshold);
  }
  return std::unique_ptr<ActQuantLinear>(new ActQuantLinear(std::move(inner), std::move(quantizer), static_threshold));
}

void ActQuantLinear::forward(const float* x, int64_t n_tokens, float* y, ThreadPool& pool) const {
  const int64_t in = in_features();
  std::vector<float> xq(static_cast<size_t>(n_tokens * in));  // [n_tokens, in]
  if (!quantizer_.apply(x, n_tokens, in, xq.data(), threshold_, &pool).ok()) {
    std::fill(xq.begin(), xq.end(), std::numeric_limits<float>::quiet_NaN());
  }
  inner_->forward(xq.data(), n_tokens, y, pool);
}

std::string ActQuantLinear::describe() const {
  const ActQuantSpec& s = quantizer_.spec();
  std::string d = fmt::format("{} · act {} {}", inner_->describe(), s.format, act_granularity_name(s.granularity));
  if (s.granularity == ActGranularity::kGroup) d += fmt::format(" {}", s.group);
  if (s.clip != 1.0f) d += fmt::format(" clip {}", s.clip);
  return d;
}

namespace {

// Why `current` keeps the simulation ("" when an integer kernel takes the spec).
std::string simulation_reason(const Linear& current, const ActQuantAttachment& a, const ActAttachOptions& options) {
  if (!options.integer_kernels) return "integer kernels off";
  const PackedLinear* packed = current.packed_linear();
  if (packed == nullptr) return "weights not packed (" + current.describe() + ")";
  return PackedLinear::integer_act_unsupported(packed->packed(), a);
}

}  // namespace

Status attach_act_quantizers(LlamaModel& model, const std::map<std::string, ActQuantAttachment>& linears,
                             const ActAttachOptions& options, ActAttachReport* report) {
  for (const auto& [name, a] : linears) {
    Linear* current = model.find_linear(name);
    if (current == nullptr) return make_error("act quantizer for '{}': the model has no such layer", name);
    auto quantizer = ActQuantizer::create(a.spec);
    if (!quantizer.ok()) return quantizer.status().with_context("linear '" + name + "'");
    if (a.spec.is_static() && !(a.static_threshold > 0.0f && std::isfinite(a.static_threshold))) {
      return make_error("linear '{}': per-tensor static activation threshold {} must be positive and finite", name,
                        a.static_threshold);
    }
    const std::string why = simulation_reason(*current, a, options);
    if (why.empty()) {
      // The packed layer rebuilt over its weight with the integer kernel's activations.
      const PackedLinear& packed = *current->packed_linear();
      auto act = PackedLinear::integer_activation(packed.packed(), a);
      if (!act.ok()) return act.status().with_context("linear '" + name + "'");
      auto integer = packed.with_activation(*act, options.isa);
      if (!integer.ok()) return integer.status().with_context("linear '" + name + "'");
      if (report != nullptr) ++report->integer[(*integer)->kernel_name()];
      LB_RETURN_IF_ERROR(model.replace_linear(name, std::move(integer).value()));
      continue;
    }
    if (report != nullptr) {
      const ActQuantSpec& s = a.spec;
      ++report->simulated[fmt::format("act {} {}: {}", s.format, act_granularity_name(s.granularity), why)];
    }
    // Checked above, so building the wrapper cannot fail. (A named copy: clang
    // before 16 cannot capture a structured binding.)
    const float static_threshold = a.static_threshold;
    LB_RETURN_IF_ERROR(model.wrap_linear(name, [&](std::unique_ptr<Linear> inner) -> std::unique_ptr<Linear> {
      return std::move(ActQuantLinear::create(std::move(inner), *quantizer, static_threshold)).value();
    }));
  }
  return Status::ok_status();
}

}  // namespace lowbit
