#include "model/quantized_linear.h"

namespace lowbit {

Expected<std::unique_ptr<QuantizedLinear>> QuantizedLinear::create(QuantizedWeight weight, std::vector<float> bias) {
  Matrix m;
  m.rows = weight.rows();
  m.cols = weight.cols();
  if (!bias.empty() && static_cast<int64_t>(bias.size()) != m.rows) {
    return make_error("quantized linear: bias has {} values for {} rows", bias.size(), m.rows);
  }
  m.data.resize(static_cast<size_t>(m.rows * m.cols));  // [out, in]
  LB_RETURN_IF_ERROR(dequantize_weight(weight, m.data.data()));
  m.bias = std::move(bias);
  return std::unique_ptr<QuantizedLinear>(new QuantizedLinear(std::move(weight), std::move(m)));
}

uint64_t QuantizedLinear::weight_bytes() const {
  return weight_.storage_bytes() + dense_.matrix().bias.size() * sizeof(float);
}

std::string QuantizedLinear::describe() const {
  std::string s = fmt::format("{} {:.3f} bpw", weight_.format, weight_.bits_per_weight());
  if (weight_.rank > 0) s += fmt::format(" +lorc{} {}", weight_.rank, weight_.lowrank_format);
  if (!weight_.outliers.empty()) s += fmt::format(" +{} outliers", weight_.outliers.size());
  return s;
}

Status attach_quantized_linears(LlamaModel& model, std::map<std::string, QuantizedWeight> linears) {
  for (auto& [name, weight] : linears) {
    const Linear* current = model.find_linear(name);
    if (current == nullptr) return make_error("quantized linear '{}': the model has no such layer", name);
    std::vector<float> bias;
    if (const auto* dense = dynamic_cast<const DenseLinear*>(current)) bias = dense->matrix().bias;
    auto q = QuantizedLinear::create(std::move(weight), std::move(bias));
    if (!q.ok()) return q.status().with_context("linear '" + name + "'");
    LB_RETURN_IF_ERROR(model.replace_linear(name, std::move(q).value()));
  }
  return Status::ok_status();
}

}  // namespace lowbit
