// What GPTQ needs from a weight format: the scales of each column group chosen
// from a slice of the matrix as it is when the pass reaches the group, then every
// column of the group quantized against those scales exactly as they will be
// stored, so the error fed back to the later columns is the error of the file.
//
// Two implementations (weight_format.cpp makes them):
//   scaled formats   quant/block_scales.h: groups of G columns (all columns for
//                    row / tensor granularity); the element codes are kept here
//                    until pack().
//   GGUF types       formats/gguf_blocks.h GgufBlockScales: one group per block
//                    of 32 or 256 columns, whose header (fp16 d, the K types'
//                    6-bit sub-block scales and mins under the super-block scales)
//                    is chosen by the type's own search.
//   trellis codes    quant/trellis_quantize.h: the codes of 64 consecutive
//                    columns are one Viterbi path, so joint_cols() = 64 and GPTQ
//                    quantizes a block of them at once (quantize_block, BlockLDLQ).
//   VQ codes         quant/vq_quantize.h: 8 consecutive columns are one vector,
//                    joint_cols() = 8; the per-tensor codebooks are trained when
//                    the ColumnScales is made, from `weights` below.
// The quantized value of an element equals what dequantizing pack()'s tensor
// gives for it, bit for bit (tests/test_quant_column_scales.cpp).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "core/status.h"
#include "formats/block_format.h"

namespace lowbit {

class ThreadPool;  // core/thread_pool.h

struct ColumnScalesOptions {
  // Scaled formats: min-max or MSE clip search of every group's scale.
  ScaleSearch search = ScaleSearch::kMinMax;
  // Two-level formats (NVFP4): |max| of the whole matrix, which sets the FP32
  // tensor scale before any group is chosen (block_scales.h).
  float tensor_amax = 0.0f;
  // Trellis and VQ codes: rows encoded in parallel on it (null: this thread).
  ThreadPool* pool = nullptr;
  // VQ codes: the matrix [rows, cols] before any column is quantized, and the
  // column importance [cols] (or empty) of the scale choice, to train the codebooks on.
  const float* weights = nullptr;
  std::span<const float> importance;
};

class ColumnScales {
 public:
  virtual ~ColumnScales() = default;

  // Columns one choice covers: the scale group / GGUF block size (cols for
  // row-granularity formats).
  virtual int64_t group_cols() const = 0;
  // Chooses the scales of every group over columns [c0, c0 + n) from their
  // current values x [rows, n] (row-major); c0 starts a group and c0 + n ends one
  // or the matrix. importance [n] (>= 0) weights the search by column, empty = 1.
  virtual Status choose(const float* x, int64_t c0, int64_t n, std::span<const float> importance) = 0;
  // Column c, x [rows] -> q [rows], the values as stored, with the scales of c's group.
  // (Formats with joint_cols() > 1 refuse it: pack() then returns an error.)
  virtual void quantize_column(int64_t c, const float* x, float* q) = 0;
  // Columns whose codes are chosen together: 1 for element-wise codes.
  virtual int64_t joint_cols() const { return 1; }
  // joint_cols() > 1: columns [c0, c0 + joint_cols()), x [rows, joint_cols()]
  // row-major -> q [rows, joint_cols()], the values as stored.
  virtual Status quantize_block(int64_t c0, const float* x, float* q) {
    return make_error("columns from {} are quantized one at a time, not as a joint block", c0);
  }
  // The stored tensor; every group chosen and every column quantized.
  virtual Expected<QuantizedTensor> pack() const = 0;
};

// choose()'s argument check for formats that choose whole groups of `group`
// columns (the trellis and VQ families): [c0, c0 + n) starts on a group and ends
// on one or at the matrix's last column, and importance has n values or none.
inline Status check_whole_groups(std::string_view format, int64_t group, int64_t cols, int64_t c0, int64_t n,
                                 std::span<const float> importance) {
  if (n < 1 || c0 % group != 0 || (c0 + n != cols && n % group != 0) || c0 + n > cols ||
      (!importance.empty() && static_cast<int64_t>(importance.size()) != n)) {
    return make_error("{}: columns [{}, {}) are not whole groups of {} (importance: {} values)", format, c0, c0 + n,
                      group, importance.size());
  }
  return Status::ok_status();
}

}  // namespace lowbit
