// llama.cpp's block types as lowbit formats: encoders that write the exact bytes
// llama.cpp stores (Q8_0, Q6_K, Q5_K, Q4_K, Q5_0, Q5_1, Q4_0, Q4_1, Q3_K, Q2_K,
// IQ4_NL), so a quantizer's output goes into a GGUF file unchanged. Decoding is
// the reference dequantizer of io/ggml_types.h (checked against gguf-py).
//
// A matrix [rows, cols] in one of these types is rows x (cols / block_size)
// blocks, row-major, each `bytes_per_block` bytes: exactly a GGUF tensor's data
// with ne0 = cols. In a QuantizedTensor the bytes live in `codes`; `scales` and
// `mins` are empty and tensor_scale is 1. cols must be a multiple of the block
// size (32, or 256 for the K types); other shapes are refused with a message
// naming the type and the shape (llama.cpp falls back to another type there).
//
// Format names are llama.cpp's type names ("q4_K", "iq4_nl", ...), distinct from
// every scaled format of block_format.h.
//
// Rows are encoded independently of each other (a row's bytes depend on that
// row and the importance alone), so callers may split a matrix by rows over
// threads; the encoders themselves are single-threaded scalar reference code.
// Quality and cost against llama.cpp's own quantizers (ggml-quants.c, with and
// without an imatrix; scripts/compare_gguf_quantizers.sh) on [64, 4096]
// Gaussian and Student-t matrices: weighted MSE 0.56-0.95 of theirs for every
// type and case; 0.05-0.4 us per weight on one core, 1-8x their imatrix path.
// The search is described in gguf_block_search.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "formats/block_format.h"
#include "io/ggml_types.h"

namespace lowbit {

// IQ4_NL (ggml type 20): 32 elements, fp16 d + 16 bytes of nibbles indexing a
// fixed non-uniform 16-value grid; x = d * grid[q]. 4.5 bits per weight.
inline constexpr uint32_t kGgmlTypeIq4Nl = static_cast<uint32_t>(GgmlType::IQ4_NL);

struct GgufBlockType {
  uint32_t type_id;          // ggml numbering (io/ggml_types.h GgmlType, 20 for IQ4_NL)
  const char* name;          // format name = llama.cpp's type name: "q4_K"
  int64_t block_size;        // elements per block: 32 or 256
  size_t bytes_per_block;
  int code_bits;             // bits of one element code (2..8), for messages and menus
  const char* description;
};

// The traits table of the encodable GGUF types, in the order listed above.
const std::vector<GgufBlockType>& gguf_block_types();
// nullptr when `name` is not a GGUF block type's format name.
const GgufBlockType* find_gguf_block_type(std::string_view name);
const GgufBlockType* find_gguf_block_type(uint32_t type_id);

// Stored bytes of a [rows, cols] matrix; error when cols is not a multiple of the block size.
Expected<uint64_t> gguf_matrix_bytes(const GgufBlockType& type, int64_t rows, int64_t cols);

// Round-to-nearest encoder, x [rows, cols] -> the tensor's bytes. `importance`
// [cols] (>= 0; empty = all 1) weights the per-block scale search by column, as
// llama.cpp's imatrix does: each block's scales (and mins) are searched to
// minimise sum_j importance[j] (x_j - q_j)^2 over the block, q_j the value as
// stored (gguf_blocks.cpp gives each type's search). Deterministic; non-finite
// input is an error naming the row and column.
Expected<QuantizedTensor> gguf_quantize(const GgufBlockType& type, const float* x, int64_t rows, int64_t cols,
                                        std::span<const float> importance = {});
// out [rows, cols], the reference dequantizer (io/ggml_types.h).
Status gguf_dequantize(const GgufBlockType& type, const QuantizedTensor& t, float* out);

// The block headers (scales, sub-block scales, mins) of one matrix held apart
// from its codes, for GPTQ: a block's header is chosen from the weights as they
// are when the pass reaches the block, then every column of the block is
// quantized with that header *as stored* (fp16 d, 6-bit sub-scales and mins of
// the K types...), so the error feedback sees exactly the values the file will
// dequantize to.
class GgufBlockScales {
 public:
  static Expected<GgufBlockScales> create(const GgufBlockType& type, int64_t rows, int64_t cols);

  const GgufBlockType& type() const;
  // Columns one choice covers: the block size.
  int64_t group_cols() const;
  // Chooses the headers of the blocks over columns [c0, c0 + n) of every row
  // from x [rows, n] (c0 a multiple of the block size, n = block size).
  // importance: [n] or empty.
  Status choose(const float* x, int64_t c0, int64_t n, std::span<const float> importance = {});
  // Column c, x [rows] -> q [rows]: the nearest stored value with c's block
  // header, equal to what gguf_dequantize returns for that element after pack().
  void quantize_column(int64_t c, const float* x, float* q);
  // The tensor's bytes; every block must have been chosen and every column quantized.
  Expected<QuantizedTensor> pack() const;

  GgufBlockScales(GgufBlockScales&&) noexcept;
  GgufBlockScales& operator=(GgufBlockScales&&) noexcept;
  ~GgufBlockScales();

 private:
  struct Impl;
  explicit GgufBlockScales(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace lowbit
