#include "model/quantized_linear.h"

#include "core/half.h"
#include "model/packed_convert.h"
#include "model/packed_linear.h"

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

LinearActivation runtime_activation(const PackedMatrix& w, const AttachOptions& options) {
  LinearActivation act;
  if (options.int8_activations && find_linear_kernel(w, ActFormat::kInt8, options.isa) != nullptr) {
    act.format = ActFormat::kInt8;
  }
  return act;
}

Expected<std::unique_ptr<Linear>> make_quantized_linear(QuantizedWeight weight, std::vector<float> bias,
                                                        const AttachOptions& options, std::string* reason) {
  std::string why = options.packed ? packed_unsupported_reason(weight) : "packed kernels off";
  if (reason != nullptr) *reason = why;
  if (why.empty()) {
    const std::string label = fmt::format("{} {:.3f} bpw", weight.format, weight.bits_per_weight());
    LB_ASSIGN_OR_RETURN(PackedMatrix packed, pack_quantized_weight(weight));
    weight = QuantizedWeight();  // only the packed layout stays resident
    const LinearActivation act = runtime_activation(packed, options);
    LB_ASSIGN_OR_RETURN(std::unique_ptr<PackedLinear> p,
                        PackedLinear::create(std::move(packed), std::move(bias), label, act, options.isa));
    return std::unique_ptr<Linear>(std::move(p));
  }
  LB_ASSIGN_OR_RETURN(std::unique_ptr<QuantizedLinear> q, QuantizedLinear::create(std::move(weight), std::move(bias)));
  return std::unique_ptr<Linear>(std::move(q));
}

std::optional<QuantizedWeight> exact_fp16_weight(const float* data, int64_t rows, int64_t cols) {
  QuantizedWeight q;
  q.format = "fp16";
  q.tensor.rows = rows;
  q.tensor.cols = cols;
  const size_t n = static_cast<size_t>(rows * cols);
  q.tensor.codes.resize(n * 2);  // [rows][cols] little-endian binary16
  for (size_t i = 0; i < n; ++i) {
    const uint16_t h = float_to_fp16(data[i]);
    if (!(fp16_to_float(h) == data[i])) return std::nullopt;
    q.tensor.codes[2 * i] = static_cast<uint8_t>(h & 0xFF);
    q.tensor.codes[2 * i + 1] = static_cast<uint8_t>(h >> 8);
  }
  return q;
}

namespace {

// A dense output head whose values are all exact in FP16 (a tied head copied from
// an embedding the file stores in FP16) as a packed FP16 linear: the same
// products at half the bytes per decode token. Null when some value is not exact.
Expected<std::unique_ptr<Linear>> exact_fp16_head(const Matrix& m, const AttachOptions& options) {
  std::optional<QuantizedWeight> q = exact_fp16_weight(m.data.data(), m.rows, m.cols);
  if (!q) return std::unique_ptr<Linear>();
  return make_quantized_linear(std::move(*q), m.bias, options);
}

}  // namespace

Status attach_quantized_linears(LlamaModel& model, std::map<std::string, QuantizedWeight> linears,
                                const AttachOptions& options, AttachReport* report) {
  const bool quantized_model = !linears.empty();
  for (auto it = linears.begin(); it != linears.end(); it = linears.erase(it)) {
    const std::string& name = it->first;
    const Linear* current = model.find_linear(name);
    if (current == nullptr) return make_error("quantized linear '{}': the model has no such layer", name);
    std::vector<float> bias;
    if (const Matrix* dense = current->dense_matrix()) bias = dense->bias;
    std::string reason;
    auto q = make_quantized_linear(std::move(it->second), std::move(bias), options, &reason);
    if (!q.ok()) return q.status().with_context("linear '" + name + "'");
    if (report != nullptr) {
      if (reason.empty()) {
        ++report->packed[(*q)->packed_linear()->kernel_name()];
      } else {
        ++report->dequantized[reason];
      }
    }
    LB_RETURN_IF_ERROR(model.replace_linear(name, std::move(q).value()));
  }
  if (quantized_model && options.packed) {
    const Linear* head = model.find_linear("lm_head");
    if (const Matrix* dense = head != nullptr ? head->dense_matrix() : nullptr) {
      LB_ASSIGN_OR_RETURN(std::unique_ptr<Linear> packed, exact_fp16_head(*dense, options));
      if (packed != nullptr) {
        if (report != nullptr) ++report->packed[packed->packed_linear()->kernel_name()];
        LB_RETURN_IF_ERROR(model.replace_linear("lm_head", std::move(packed)));
      }
    }
  }
  return Status::ok_status();
}

}  // namespace lowbit
