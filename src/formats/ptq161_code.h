// PTQ1.61 weights (Zhao et al. 2025, "PTQ1.61: Push the Real Limit of Extremely
// Low-Bit Post-Training Quantization Methods for LLMs"; issue 19, item 1): the
// stored form of a matrix W [rows, cols] whose salient *input channels* (a
// one-dimensional structured mask over the columns, one bit per column for the
// whole tensor) are kept at 4 bits and whose other columns are binarised.
//
// Format names: ptq161_s<P>_b<B>, e.g. ptq161_s125_b192:
//   ns = round(cols * P / 1000) salient columns (P in 0 .. 1000 per mille),
//   nb = cols - ns binarised columns, cut in column order (skipping the salient
//   ones) into blocks of B (a multiple of 32; the last block may be short).
// Per row r:
//   salient column j (the j-th set bit of the mask):  W = s_r * q + m_r,  q in 0 .. 15
//   binarised column i (the i-th clear bit), block b = i / B:
//                                                     W = mu_rb + alpha_rb * (bit ? +1 : -1)
// Stored arrays (QuantizedTensor):
//   codes   the mask, ceil(cols / 8) bytes (bit c % 8 of byte c / 8: column c salient;
//           bits past cols zero), then per row ceil(ns / 2) bytes of 4-bit codes
//           (salient column j in nibble j % 2 of byte j / 2, low nibble first) and
//           ceil(nb / 8) bytes of signs (bit i % 8 of byte i / 8; bits past nb zero)
//   scales  per row, FP16 bit patterns little-endian: s_r, m_r, then alpha_rb, mu_rb
//           for each of the ceil(nb / B) blocks
//   mins    empty
// Bits per weight = 8 * (all code and scale bytes, mask included) / (rows * cols):
// about 4 P/1000 + (1 - P/1000) (1 + 32/B) + 32/cols + 1/rows; ptq161_s125_b192 on
// SmolLM2's 576-column matrices is 1.60, on 1536 columns 1.54.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"
#include "formats/block_format.h"

namespace lowbit {

struct Ptq161Params {
  int salient_permille = 125;  // P
  int block = 192;             // B: binarised columns per (alpha, mu) pair, a multiple of 32

  int64_t salient_cols(int64_t cols) const { return (cols * salient_permille + 500) / 1000; }
  int64_t binary_cols(int64_t cols) const { return cols - salient_cols(cols); }
  int64_t binary_blocks(int64_t cols) const { return (binary_cols(cols) + block - 1) / block; }
  int64_t mask_bytes(int64_t cols) const { return (cols + 7) / 8; }
  int64_t row_code_bytes(int64_t cols) const { return (salient_cols(cols) + 1) / 2 + (binary_cols(cols) + 7) / 8; }
  int64_t row_scales(int64_t cols) const { return 2 + 2 * binary_blocks(cols); }  // FP16 values per row
};

// Whether a name has the ptq161 prefix (so it is parsed here, or refused here).
bool is_ptq161_format_name(std::string_view name);
// "ptq161_s125_b192" -> its parameters; errors name the name and what is wrong.
Expected<Ptq161Params> parse_ptq161_format(std::string_view name);
std::string ptq161_format_name(const Ptq161Params& p);

// Byte sizes of the stored arrays of a [rows, cols] matrix (rows, cols >= 1).
struct Ptq161Sizes {
  uint64_t codes = 0, scales = 0;
};
Ptq161Sizes ptq161_sizes(const Ptq161Params& p, int64_t rows, int64_t cols);
Status ptq161_check_shape(const Ptq161Params& p, int64_t rows, int64_t cols);

// The salient column indices of a stored tensor, ascending, after checking that
// the array sizes match the shape, that the mask has exactly ns bits and no bit
// past cols; errors name the format, the shape and what is wrong.
Expected<std::vector<int32_t>> ptq161_salient_columns(const Ptq161Params& p, const QuantizedTensor& t);

// The reference decoder: out [rows, cols] (validates as above).
Status ptq161_dequantize(const Ptq161Params& p, const QuantizedTensor& t, float* out);

}  // namespace lowbit
