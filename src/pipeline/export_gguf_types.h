// The GGUF storage types `lowbit export --to gguf` writes, and the two ways a
// stored tensor gets into one:
//
// Exact conversions (GgufExactRule): a stored format whose dequantized values a
// GGUF type reproduces bit for bit, so the tensor is re-laid out, not requantized:
//   fp32 -> F32, fp16 -> F16, bf16 -> BF16   same bytes
//   asymmetric UINT4, FP16 scale and FP16 minimum per group of 32k -> Q4_1
//       (int4_g128_asym): each group's scale and minimum repeated over its
//       32-blocks. lowbit decodes code * s + m (product exact: 4 x 11 bits), Q4_1
//       decodes q * d + m with d = s, m = m: the same product and the same one
//       rounding of the add.
//   symmetric integer codes in [-8, 7], FP16 scale per group of 32k -> Q4_0
//       (int4_g128, codes in [-7, 7]): q = code + 8, d = s; (q - 8) * d is the
//       same exact product code * s.
//   symmetric integer codes in [-128, 127], FP16 scale per group of 32k -> Q8_0.
// Every other format (INT3/INT2 groups, NF4, FP8, MX and NVFP4, INT8 with FP32
// row scales, ...) has no GGUF type with the same values; nor has a tensor with
// outliers or a low-rank correction. Every conversion is checked after the fact:
// lowbit's dequantization of the stored tensor and the GGUF reference decode of
// the written bytes must agree bit for bit.
//
// Requantization (gguf_encode): FP32 values into f32 (exact), f16/bf16 (round to
// nearest even, saturating) or a llama.cpp block type through its RTN encoder
// (formats/gguf_blocks.h). A type whose block does not divide the row length
// falls back as llama.cpp's quantize does: q2_K, q3_K -> q4_0; q4_K -> q5_0;
// q5_K -> q5_1; q6_K -> q8_0; then f16 when 32 does not divide it either.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "formats/block_format.h"

namespace lowbit {

struct GgufOutputType {
  std::string name;   // --type name, as llama.cpp prints it: "f32", "f16", "bf16", "q4_K", "iq4_nl", ...
  uint32_t type_id;   // ggml numbering
  int64_t block_size; // elements per block: 1, 32 or 256
  int llama_ftype;    // general.file_type of a file mostly in this type (llama.h llama_ftype)
  std::string fallback;  // llama.cpp's type when the block does not divide the row ("" = f16)
};

// f32, f16, bf16, then the llama.cpp block types of formats/gguf_blocks.h.
const std::vector<GgufOutputType>& gguf_output_types();
const GgufOutputType* find_gguf_output_type(std::string_view name);
const GgufOutputType* find_gguf_output_type(uint32_t type_id);
// "f32, f16, bf16, q8_0, ..." for messages.
std::string gguf_output_type_names();

// The type a row of `cols` elements gets when `wanted` is asked for: `wanted`
// when its block divides cols, else llama.cpp's fallback chain ending in f16.
const GgufOutputType& gguf_type_for_row(const GgufOutputType& wanted, int64_t cols);

// x [rows, cols] into `type`'s bytes (rows of blocks, ne0 = cols); cols must be a
// multiple of the block size.
Expected<std::vector<uint8_t>> gguf_encode(const GgufOutputType& type, const float* x, int64_t rows, int64_t cols);
// The reference decode (io/ggml_types.h, formats/gguf_blocks.h) of a tensor's
// bytes into [rows, cols] floats.
Expected<std::vector<float>> gguf_decode(uint32_t type_id, std::span<const uint8_t> bytes, int64_t rows, int64_t cols);

// An exact conversion of a stored format (see above).
struct GgufExactRule {
  const char* description;  // for messages and docs
  uint32_t type_id;         // the GGUF type it writes
  // Whether the stored format (fp32 is `format` == nullptr) converts by this rule.
  bool (*applies)(const BlockFormat* format);
  // The tensor's GGUF bytes; the row length must be a multiple of the type's block.
  Expected<std::vector<uint8_t>> (*convert)(const BlockFormat* format, const QuantizedTensor& t);
};

// The exact rule for stored format `format` ("fp32" or a block format name), or
// nullptr when none applies (and for names that are not block formats).
const GgufExactRule* find_gguf_exact_rule(const std::string& format);
// The same for a block format (nullptr: fp32), by its layout alone.
const GgufExactRule* find_gguf_exact_rule(const BlockFormat* format);

}  // namespace lowbit
