#include "model/deterministic.h"

#include <memory>
#include <string>

#include "kernels/packed_matrix.h"
#include "model/fixed_order_linear.h"
#include "model/packed_linear.h"

namespace lowbit {
namespace {

// The FP32 matrix [rows, cols] of a packed weight by the layout's reference decode.
Matrix decode_packed(const PackedMatrix& w) {
  Matrix m;
  m.rows = w.rows;
  m.cols = w.cols;
  m.data.resize(static_cast<size_t>(w.rows * w.cols));
  for (int64_t r = 0; r < w.rows; ++r) {
    for (int64_t c = 0; c < w.cols; ++c) m.data[static_cast<size_t>(r * w.cols + c)] = packed_value(w, r, c);
  }
  return m;
}

// The FP32 matrix of a layer whose weights the fixed-order dot can take as they are.
Expected<Matrix> fp32_matrix(const std::string& name, const Linear& layer) {
  if (const Matrix* m = layer.dense_matrix()) return *m;
  if (const PackedLinear* p = layer.packed_linear()) {
    if (p->activation().format != ActFormat::kFp32) {
      return make_error("linear '{}' ({}) quantizes its activations: --deterministic runs FP32 activations only",
                        name, layer.describe());
    }
    Matrix m = decode_packed(p->packed());
    m.bias = p->bias();
    return m;
  }
  return make_error("linear '{}' ({}) has no deterministic kernel: --deterministic takes FP32 or weight-only "
                    "packed linears",
                    name, layer.describe());
}

}  // namespace

Status make_deterministic(LlamaModel& model, Isa isa) {
  for (const std::string& name : model.linear_names()) {
    LB_ASSIGN_OR_RETURN(Matrix m, fp32_matrix(name, *model.find_linear(name)));
    LB_RETURN_IF_ERROR(model.replace_linear(name, std::make_unique<FixedOrderLinear>(std::move(m), isa)));
  }
  if (const std::shared_ptr<const PackedMatrix>& table = model.token_embedding().packed_table()) {
    Matrix m = decode_packed(*table);
    LB_ASSIGN_OR_RETURN(TokenEmbedding fp32, TokenEmbedding::fp32(std::move(m.data), m.cols));
    LB_RETURN_IF_ERROR(model.replace_token_embedding(std::move(fp32)));
  }
  model.set_fixed_order(true, isa);
  return Status::ok_status();
}

}  // namespace lowbit
