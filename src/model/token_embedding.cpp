#include "model/token_embedding.h"

#include <algorithm>

#include "kernels/kernel_table.h"

namespace lowbit {

Expected<TokenEmbedding> TokenEmbedding::fp32(std::vector<float> table, int64_t dim) {
  if (dim <= 0 || table.size() % static_cast<size_t>(dim) != 0) {
    return make_error("token embedding: {} values are not rows of {}", table.size(), dim);
  }
  TokenEmbedding e;
  e.dim_ = dim;
  e.vocab_ = static_cast<int64_t>(table.size()) / dim;
  e.fp32_ = std::move(table);
  return e;
}

Expected<TokenEmbedding> TokenEmbedding::packed(std::shared_ptr<const PackedMatrix> table, Isa isa) {
  if (table == nullptr) return make_error("token embedding: no packed table");
  LB_RETURN_IF_ERROR(table->validate().with_context("token embedding"));
  TokenEmbedding e;
  e.vocab_ = table->rows;
  e.dim_ = table->cols;
  const LinearKernel* k = find_linear_kernel(*table, ActFormat::kFp32, isa);
  if (k == nullptr) return make_error("token embedding: no kernel for the {} layout", packed_kind_name(table->kind));
  e.kernels_ = k->fp;
  e.packed_ = std::move(table);
  return e;
}

void TokenEmbedding::lookup(int32_t token, float* out) const {
  if (packed_ != nullptr) {
    kernels_.dequantize_rows(*packed_, token, token + 1, out);
  } else {
    std::copy_n(fp32_.data() + static_cast<int64_t>(token) * dim_, dim_, out);
  }
}

uint64_t TokenEmbedding::bytes() const {
  return packed_ != nullptr ? packed_->storage_bytes() : fp32_.size() * sizeof(float);
}

}  // namespace lowbit
