// One lowbit quantized linear (QuantizedWeight in a block format) as the tensors
// a compressed-tensors checkpoint stores for it (io/compressed_tensors.h).
//
// Formats map by their traits:
//   signed integers (int8_pc, int4_g128, int4_full, mxint8...), 2/4/8 bits, per row,
//     per tensor or in groups  -> pack-quantized, symmetric
//   unsigned integers with a block minimum (int4_g128_asym, int2_g64)
//                             -> pack-quantized, asymmetric with integer zero points
//   FP8 E4M3 per row, per tensor or in 2D tiles (fp8_e4m3, fp8_e4m3_b128)
//                             -> float-quantized (channel / tensor / block)
//   NVFP4 (E2M1, UE4M3 per 16, FP32 tensor scale) -> nvfp4-pack-quantized
// The scale stored for a block is the FP32 number lowbit multiplies the element by
// (the decoded scale code, times the tensor scale and 2^unit where the format has
// them), so (q - z) * s computed in FP32 is lowbit's dequantization bit for bit.
// A group of G that does not divide the columns (SmolLM2's 576 with G = 128: a
// partial last group) is written with groups of gcd(G, cols), each sub-group
// repeating its group's scale: the same values, in the grid compressed-tensors
// requires (columns a multiple of the group size).
//
// What is not exact: lowbit's asymmetric formats store a float minimum m with
// x = u*s + m, compressed-tensors an integer zero point z with x = (u - z)*s, equal
// only when -m/s is an integer in [0, 2^b - 1]; NVFP4's global scale is a divisor
// (s_block = scale / global), lowbit's a factor, equal only when some FP32 divisor
// reproduces every product; sparse outliers and low-rank corrections have no place
// at all. Every converted tensor is decoded again and compared with lowbit's
// dequantization bit for bit: a tensor that differs is requantized (asymmetric:
// round-to-nearest with integer zero points from the dequantized weights; others:
// the same lowbit format from the dequantized weights), and the difference it adds
// is reported, or, with `exact`, the conversion fails naming the tensor.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "formats/block_format.h"
#include "io/compressed_tensors.h"
#include "io/safetensors_writer.h"
#include "quant/quantized_weight.h"

namespace lowbit {

// Rows of a row-major [rows, n] array in `order`: stored row r = row order[r]
// (the RoPE half-split order of q/k); empty order = unchanged.
template <typename T>
std::vector<T> reorder_rows(const std::vector<T>& v, int64_t n, const std::vector<int64_t>& order) {
  if (order.empty()) return v;
  std::vector<T> out(v.size());
  for (size_t r = 0; r < order.size(); ++r) {
    std::copy_n(v.begin() + order[r] * n, n, out.begin() + static_cast<int64_t>(r) * n);
  }
  return out;
}

// The scheme a format maps onto for a [rows, cols] weight; errors name `tensor`
// and the format when compressed-tensors cannot hold it.
Expected<CtScheme> ct_scheme_for_format(const BlockFormat& format, int64_t rows, int64_t cols,
                                        const std::string& tensor);

// The tensors stored for module prefix `prefix` under `scheme` (names, dtypes, shapes).
std::vector<SafetensorsEntry> ct_module_entries(const CtScheme& scheme, const std::string& prefix, int64_t rows,
                                                int64_t cols);

// One converted weight: the stored tensors' bytes, in ct_module_entries order.
struct CtConvertedLinear {
  std::vector<SafetensorsEntry> entries;
  std::vector<std::vector<uint8_t>> bytes;
  bool exact = true;        // decodes to lowbit's dequantization bit for bit
  std::string note;         // why and how it was requantized ("" when exact)
  double rms_error = 0.0;   // sqrt(mean((decoded - lowbit)^2)), 0 when exact
  double max_error = 0.0;   // max |decoded - lowbit|
  double weight_rms = 0.0;  // sqrt(mean(lowbit^2)), for the relative error
};

struct CtConvertOptions {
  bool exact = false;  // fail instead of requantizing
  // Rows reordered after conversion: stored row r is converted row row_order[r]
  // (the RoPE half-split order for q/k of adjacent-pair models); empty = as is.
  std::vector<int64_t> row_order;
};

// Converts `q` (a [rows, cols] weight in a block format) for module `prefix`
// under `scheme` (ct_scheme_for_format of its format). `tensor` names it in errors.
Expected<CtConvertedLinear> ct_convert_linear(const QuantizedWeight& q, const CtScheme& scheme,
                                              const std::string& prefix, const std::string& tensor,
                                              const CtConvertOptions& options);

}  // namespace lowbit
