// The token embedding table [vocab, dim] of a model, in one of two forms:
//   FP32 rows: models loaded in FP32 (GGUF, Hugging Face, llama2.c), whose
//     embedding the quantization pipeline reads and rotates;
//   a packed matrix (kernels/packed_matrix.h): the table of a lowbit model file
//     as stored (FP16/BF16, or a quantized layout with a packed kernel). Only the
//     looked-up rows are dequantized, one forward call at a time, so the table
//     costs its stored bytes (SmolLM2-135M FP16: 56.6 MB instead of 113 MB); a
//     tied output head runs on the same matrix (PackedLinear::create_shared),
//     so the table is held once.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/status.h"
#include "kernels/cpu_features.h"
#include "kernels/packed_matrix.h"

namespace lowbit {

class TokenEmbedding {
 public:
  TokenEmbedding() = default;
  // table: [vocab, dim] row-major; error when its size is not a multiple of dim.
  static Expected<TokenEmbedding> fp32(std::vector<float> table, int64_t dim);
  // table: [vocab, dim] in a packed layout (validated); rows are decoded by the
  // layout's dequantize_rows kernel for `isa`.
  static Expected<TokenEmbedding> packed(std::shared_ptr<const PackedMatrix> table, Isa isa = active_isa());

  int64_t vocab() const { return vocab_; }
  int64_t dim() const { return dim_; }
  // out: [dim] the row of `token`, which must lie in [0, vocab).
  void lookup(int32_t token, float* out) const;
  // Bytes held: 4·vocab·dim, or the packed matrix's storage_bytes().
  uint64_t bytes() const;

  // The packed table (null for an FP32 one), for a tied head to share.
  const std::shared_ptr<const PackedMatrix>& packed_table() const { return packed_; }
  // The FP32 table [vocab, dim]; empty when packed.
  const std::vector<float>& fp32_table() const { return fp32_; }

 private:
  int64_t vocab_ = 0;
  int64_t dim_ = 0;
  std::vector<float> fp32_;                     // [vocab, dim]; empty when packed
  std::shared_ptr<const PackedMatrix> packed_;  // [vocab, dim]; null when FP32
  PackedKernels kernels_;
};

}  // namespace lowbit
