// A quantized weight matrix as the quantizers produce it and the model file
// stores it: packed codes + scales in a block format, plus the side tables some
// methods add (EasyQuant's sparse full-precision outliers, LoRC's low-rank
// correction W ~ Q + U·V).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "formats/block_format.h"

namespace lowbit {

struct SparseOutlier {
  int32_t row = 0;
  int32_t col = 0;
  float value = 0.0f;  // replaces the dequantized value at (row, col)
};

struct QuantizedWeight {
  std::string format;                  // weight format name (quant/weight_format.h) or "fp32"
  QuantizedTensor tensor;              // [rows, cols] packed
  std::vector<SparseOutlier> outliers; // sorted by (row, col); empty if none
  // Low-rank correction, each factor itself quantized (or in "fp32"/"fp16"/"bf16").
  int rank = 0;
  std::string lowrank_format;
  QuantizedTensor lowrank_u;           // [rows, rank]
  QuantizedTensor lowrank_v;           // [rank, cols]

  int64_t rows() const { return tensor.rows; }
  int64_t cols() const { return tensor.cols; }
  // Every stored byte: codes, scales, mins, outliers (4+4+4 bytes each), U, V.
  uint64_t storage_bytes() const;
  double bits_per_weight() const;
};

// W_hat [rows, cols] = dequant(Q) with outliers substituted, + U·V.
Status dequantize_weight(const QuantizedWeight& q, float* out);

// A matrix stored under a format name: any block format (formats/block_format.h),
// any GGUF block type (formats/gguf_blocks.h: the GGUF tensor bytes in `codes`),
// or "fp32": raw little-endian floats in `codes` [rows][cols * 4], no scales
// (there is no fp32 block format; LoRC factors may be kept exact with it).
inline constexpr const char* kFp32Storage = "fp32";
Expected<QuantizedTensor> quantize_matrix(const std::string& format, const float* x, int64_t rows, int64_t cols);
Status dequantize_matrix(const std::string& format, const QuantizedTensor& t, float* out);
// Bytes of t as stored: codes, scales, mins, and the FP32 tensor scale only for
// the two-level formats (NVFP4), i.e. packed_bytes() of block_format.h (a GGUF
// type: its tensor bytes).
Expected<uint64_t> matrix_storage_bytes(const std::string& format, const QuantizedTensor& t);

}  // namespace lowbit
