// QuantizedWeight (quantized_weight.h): sizes and the dequantization every
// method shares.
#include "quant/quantized_weight.h"

#include <cstring>

#include <cblas.h>

#include "quant/weight_format.h"

namespace lowbit {
namespace {

constexpr uint64_t kOutlierBytes = 12;  // row, col, value: 4 + 4 + 4

bool is_fp32(const std::string& format) { return format == kFp32Storage; }

}  // namespace

Expected<QuantizedTensor> quantize_matrix(const std::string& format, const float* x, int64_t rows, int64_t cols) {
  if (rows < 0 || cols < 0) return make_error("{}: negative shape [{}, {}]", format, rows, cols);
  if (is_fp32(format)) {
    QuantizedTensor t;
    t.rows = rows;
    t.cols = cols;
    t.codes.resize(static_cast<size_t>(rows * cols) * sizeof(float));
    if (!t.codes.empty()) std::memcpy(t.codes.data(), x, t.codes.size());
    return t;
  }
  LB_ASSIGN_OR_RETURN(WeightFormat f, WeightFormat::find(format));
  return f.quantize(x, rows, cols);
}

Status dequantize_matrix(const std::string& format, const QuantizedTensor& t, float* out) {
  if (is_fp32(format)) {
    if (t.rows < 0 || t.cols < 0 || t.codes.size() != static_cast<size_t>(t.rows * t.cols) * sizeof(float) ||
        !t.scales.empty() || !t.mins.empty()) {
      return make_error("fp32: stored sizes (codes {}, scales {}) do not match [{}, {}]", t.codes.size(),
                        t.scales.size(), t.rows, t.cols);
    }
    if (!t.codes.empty()) std::memcpy(out, t.codes.data(), t.codes.size());
    return Status::ok_status();
  }
  LB_ASSIGN_OR_RETURN(WeightFormat f, WeightFormat::find(format));
  return f.dequantize(t, out);
}

Expected<uint64_t> matrix_storage_bytes(const std::string& format, const QuantizedTensor& t) {
  const uint64_t arrays = t.codes.size() + t.scales.size() + t.mins.size();
  if (is_fp32(format)) return arrays;
  LB_ASSIGN_OR_RETURN(WeightFormat f, WeightFormat::find(format));
  const BlockFormat* block = f.block_format();
  return arrays + (block != nullptr && block->layout.tensor_scale ? 4u : 0u);
}

uint64_t QuantizedWeight::storage_bytes() const {
  // An unknown format name cannot be stored anyway; count every array and the tensor scale.
  auto bytes = [](const std::string& format, const QuantizedTensor& t) -> uint64_t {
    auto b = matrix_storage_bytes(format, t);
    return b.ok() ? b.value() : t.total_bytes();
  };
  uint64_t total = bytes(format, tensor) + kOutlierBytes * outliers.size();
  if (rank > 0) total += bytes(lowrank_format, lowrank_u) + bytes(lowrank_format, lowrank_v);
  return total;
}

double QuantizedWeight::bits_per_weight() const {
  const double n = static_cast<double>(rows()) * static_cast<double>(cols());
  return n > 0.0 ? 8.0 * static_cast<double>(storage_bytes()) / n : 0.0;
}

Status dequantize_weight(const QuantizedWeight& q, float* out) {
  const int64_t rows = q.rows(), cols = q.cols();
  if (rows < 0 || cols < 0) return make_error("{}: negative shape [{}, {}]", q.format, rows, cols);
  if (rows * cols == 0) return Status::ok_status();
  if (out == nullptr) return make_error("{}: null output", q.format);
  LB_RETURN_IF_ERROR(dequantize_matrix(q.format, q.tensor, out));
  for (size_t i = 0; i < q.outliers.size(); ++i) {
    const SparseOutlier& o = q.outliers[i];
    if (o.row < 0 || o.row >= rows || o.col < 0 || o.col >= cols) {
      return make_error("outlier {} at ({}, {}) lies outside the [{}, {}] matrix", i, o.row, o.col, rows, cols);
    }
    out[static_cast<int64_t>(o.row) * cols + o.col] = o.value;
  }
  if (q.rank == 0) return Status::ok_status();
  const int64_t r = q.rank;
  if (r < 0 || q.lowrank_u.rows != rows || q.lowrank_u.cols != r || q.lowrank_v.rows != r ||
      q.lowrank_v.cols != cols) {
    return make_error("low-rank factors [{}, {}] x [{}, {}] do not match rank {} of a [{}, {}] matrix",
                      q.lowrank_u.rows, q.lowrank_u.cols, q.lowrank_v.rows, q.lowrank_v.cols, r, rows, cols);
  }
  std::vector<float> u(static_cast<size_t>(rows * r)), v(static_cast<size_t>(r * cols));  // [rows, r], [r, cols]
  LB_RETURN_IF_ERROR(dequantize_matrix(q.lowrank_format, q.lowrank_u, u.data()).with_context("low-rank U"));
  LB_RETURN_IF_ERROR(dequantize_matrix(q.lowrank_format, q.lowrank_v, v.data()).with_context("low-rank V"));
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows), static_cast<int>(cols),
              static_cast<int>(r), 1.0f, u.data(), static_cast<int>(r), v.data(), static_cast<int>(cols), 1.0f, out,
              static_cast<int>(cols));
  return Status::ok_status();
}

}  // namespace lowbit
