// The block scales of one matrix held apart from its codes, so values can be
// quantized against scales chosen earlier from other values. GPTQ needs this:
// it picks a group's scales from the weights as they are when it reaches the
// group, then quantizes each column of the group, updated since, with those
// scales. EasyQuant uses it to try candidate ranges per block.
//
// Scales are always chosen by the formats layer (one quantize() call on the
// values that define them, so with the format's scale rule and search). What
// the formats layer then does per value is repeated here exactly
// (block_format.h): y = clamp(x / s) or clamp((x - m) / s) to the element range,
// s == 0 giving +0; the element codec (ElementKernel, bit for bit the reference
// codec); back v * s or v * s + m with two roundings. So pack() gives a
// QuantizedTensor whose dequantize() returns the same floats as quantize_*()
// here, and quantizing the values that chose the scales gives the same bytes as
// quantize() (tests/test_quant_block_scales.cpp).
//
// Two-level formats (NVFP4): the FP32 tensor scale comes from |max| of the whole
// matrix, which GPTQ and EasyQuant fix before choosing any group. choose() then
// quantizes the slice with one extra row [tensor_amax, 0, ...] and with its
// values clamped to +-tensor_amax, so the formats layer derives that same tensor
// scale, and each block scale is encode(amax_block / vmax / s_tensor) as it
// would be inside the whole matrix (a block beyond tensor_amax saturates the
// scale either way). The extra row only adds scale blocks of its own, because
// rows are independent under group and row granularity; block2d and tensor
// granularity with a tensor scale are refused.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "core/status.h"
#include "formats/block_format.h"
#include "formats/element_kernel.h"

namespace lowbit {

class BlockScales {
 public:
  // For a rows x cols matrix in `format`, which must outlive this object.
  static Expected<BlockScales> create(const BlockFormat& format, int64_t rows, int64_t cols);

  // Two-level formats: the |max| of the matrix the tensor scale is taken from.
  // Must be called before choose(); ignored by other formats.
  void set_tensor_amax(float amax) { tensor_amax_ = amax; }

  // Chooses the scales of every block meeting columns [c0, c0 + n) from x
  // [rows, n], row-major. c0 must start a scale group and c0 + n end one (or the
  // matrix). Blocks chosen before are overwritten.
  Status choose(const float* x, int64_t c0, int64_t n, const QuantizeOptions& options = {});
  // Copies the choice of block b from `other` (same format and shape).
  void copy_block(const BlockScales& other, int64_t b);

  // Columns per scale group: G for group and block2d granularity, else all columns.
  int64_t group_cols() const { return group_; }
  int64_t num_blocks() const { return grid_rows_ * grid_cols_; }
  // The scale block of element (r, c); rows, then column groups.
  int64_t block_of(int64_t r, int64_t c) const { return (r / block_rows_) * grid_cols_ + c / group_; }
  bool chosen(int64_t b) const { return chosen_[b] != 0; }
  float tensor_scale() const { return tensor_scale_; }

  // Column c, x [rows] -> element codes [rows] (may be null) and the
  // dequantized values q [rows], with the scales of c's blocks (chosen before).
  void quantize_column(int64_t c, const float* x, uint16_t* codes, float* q);
  // Row r, columns [c0, c0 + n): x [n] -> codes [n] (may be null) and q [n].
  void quantize_row(int64_t r, int64_t c0, int64_t n, const float* x, uint16_t* codes, float* q);

  // The packed tensor of codes [rows, cols] (row-major) with these scales;
  // every block must have been chosen.
  Expected<QuantizedTensor> pack(const uint16_t* codes) const;

 private:
  BlockScales(const BlockFormat& format, ElementKernel kernel, BlockKernel block_kernel, int64_t rows, int64_t cols);
  void encode_decode(const float* x, int64_t n, uint16_t* codes, float* q);

  const BlockFormat* format_;
  ElementKernel kernel_;       // the element step
  BlockKernel block_kernel_;   // choose(): the formats layer's quantize
  int64_t rows_, cols_;
  int64_t group_ = 1, block_rows_ = 1, grid_rows_ = 1, grid_cols_ = 1;
  std::optional<float> tensor_amax_;
  float tensor_scale_ = 1.0f;
  // Per block: [num_blocks]
  std::vector<uint32_t> scale_code_, min_code_;
  std::vector<float> scale_, offset_;  // what the element map uses: s * s_tensor * 2^unit, and m
  std::vector<uint8_t> chosen_;
  // Scratch: [max(rows, cols)]
  std::vector<float> s_, o_, y_;
  std::vector<uint16_t> c_;
};

}  // namespace lowbit
