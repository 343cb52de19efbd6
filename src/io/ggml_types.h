// Tensor storage types of the GGUF file format (ggml numbering) and their block
// layouts. One traits table describes every type lowbit can read; loaders ask the
// table for block size, bytes per block and the reference dequantizer, never
// branching on the type themselves.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace lowbit {

// Numbering fixed by the GGUF specification (ggml_type).
enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ4_NL = 20,
  BF16 = 30,
};

// IQ4_NL's fixed 16-value grid (ggml-common.h kvalues_iq4nl), ascending: code q
// of a block with scale d decodes to d * kIq4NlGrid[q].
inline constexpr std::array<int8_t, 16> kIq4NlGrid = {-127, -104, -83, -65, -49, -35, -22, -10,
                                                      1,    13,   25,  38,  53,  69,  89,  113};

// Dequantizes `n_blocks` consecutive blocks from `src` into `dst`
// ([n_blocks * block_size] floats). Scalar reference code.
using DequantizeBlocksFn = void (*)(const uint8_t* src, float* dst, int64_t n_blocks);

struct GgmlTypeTraits {
  GgmlType type;
  const char* name;          // "q4_K" etc., as llama.cpp prints it
  int64_t block_size;        // elements per block
  size_t bytes_per_block;    // storage bytes per block
  DequantizeBlocksFn dequantize;
  // The type llama.cpp's CPU backend converts the activations (the other operand)
  // of a matrix product with a weight of this type to before multiplying (its
  // "vec_dot_type", ggml-cpu.c type_traits_cpu): F32 -> F32, F16 -> F16, BF16 ->
  // BF16, Q4_0/Q5_0/Q8_0/IQ4_NL -> Q8_0, Q4_1/Q5_1 -> Q8_1, Q2_K..Q6_K -> Q8_K.
  // formats/ggml_activations.h rounds activations to these types.
  GgmlType act_type;
  // Byte offset of the FP16 block minimum m in a block of a type with one
  // (Q4_1, Q5_1: x = d * q + m); -1 for other types.
  int min_offset;
};

// The block minimums m of `n_blocks` consecutive blocks of a type with one
// (min_offset >= 0) from `src` into out [n_blocks]; false, touching nothing, for
// a type without.
bool ggml_block_mins(const GgmlTypeTraits& type, const uint8_t* src, int64_t n_blocks, float* out);

// Returns the traits of a type id read from a file, or nullptr when lowbit cannot
// decode that type.
const GgmlTypeTraits* find_ggml_type(uint32_t type_id);

// Name of any ggml type id, including ones lowbit cannot decode (for messages).
std::string ggml_type_name(uint32_t type_id);

}  // namespace lowbit
