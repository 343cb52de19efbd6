// compressed-tensors: the quantized checkpoint format of vLLM and llm-compressor
// (github.com/vllm-project/compressed-tensors), read and described here; the
// exporter (pipeline/export_ct.h) writes it.
//
// A checkpoint is a Hugging Face folder whose config.json has
//   "quantization_config": {"quant_method": "compressed-tensors",
//     "format": "pack-quantized" | "float-quantized" | "nvfp4-pack-quantized" | "mixed-precision",
//     "quantization_status": "compressed",
//     "config_groups": {"group_0": {"targets": ["Linear"], "format": ...,
//        "weights": {"num_bits": 4, "type": "int", "symmetric": true,
//                    "strategy": "group", "group_size": 128, ...}}},
//     "ignore": ["lm_head"]}
// A Linear module takes the scheme of the first group one of whose targets
// matches it: "Linear" (the class), "re:PATTERN" (Python re.match on the module
// name, i.e. anchored at its start) or the exact name; unless it matches "ignore".
// Per module with prefix P (P = "model.layers.0.self_attn.q_proj"), weight W [rows, cols]:
//   pack-quantized (INT, 1-8 bits; 2, 4, 8 here)
//     P.weight_packed      I32 [rows, ceil(cols*b/32)]: each row is a bit stream of
//                          unsigned codes u = q + 2^(b-1) (q signed, in [-2^(b-1), 2^(b-1)-1]),
//                          code c at stream bits [c*b, c*b+b), bit 0 = LSB of word 0
//                          (so 4-bit: 8 codes per int32, low nibble first)
//     P.weight_scale       [rows, cols/G] (group), [rows, 1] (channel), [1] (tensor)
//     P.weight_zero_point  asymmetric only: I32 [ceil(rows*b/32), cols/G], the signed zero
//                          points z packed the same way along the rows (packed_dim = 0)
//     P.weight_shape       I64 [2] = {rows, cols}
//     W = (q - z) * s   (z = 0 when symmetric)
//   float-quantized (FP8 E4M3, OCP "fn": max 448, 0x7f/0xff NaN)
//     P.weight             F8_E4M3 [rows, cols]
//     P.weight_scale       [rows, 1] (channel), [1] or [] (tensor), [ceil(rows/bh), ceil(cols/bw)] (block)
//     W = fp8(code) * s
//   nvfp4-pack-quantized (FP4 E2M1, strategy "tensor_group", G = 16)
//     P.weight_packed      U8 [rows, cols/2], two E2M1 codes per byte, low nibble first
//     P.weight_scale       F8_E4M3 [rows, cols/16]
//     P.weight_global_scale F32 [1]
//     W = fp4(code) * (s / global_scale)
// Dequantization here is in FP32, rounded to the scale's dtype when that is F16
// or BF16, as the reference decompressor computes (in the scale's dtype, where each
// product of a small integer or FP8 value and a 16-bit scale is exact in FP32 and
// rounds once). Activation quantization in a scheme is not applied: lowbit loads
// the weights.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "io/safetensors.h"

namespace lowbit {

enum class CtStrategy { kTensor, kChannel, kGroup, kBlock, kTensorGroup };
const char* ct_strategy_name(CtStrategy s);

// The "weights" QuantizationArgs of a scheme.
struct CtWeightArgs {
  int num_bits = 8;
  bool is_float = false;  // "type": "float" (FP8 E4M3, FP4 E2M1) or "int"
  bool symmetric = true;
  CtStrategy strategy = CtStrategy::kChannel;
  int64_t group_size = 0;                // group / tensor_group
  int64_t block_rows = 0, block_cols = 0;  // block
  bool operator==(const CtWeightArgs&) const = default;
};

struct CtScheme {
  std::vector<std::string> targets;
  std::string format;  // compression format of the modules it covers
  CtWeightArgs weights;
  bool has_input_activations = false;  // recorded, not applied
};

struct CtConfig {
  std::string format;  // top level: one format, or "mixed-precision"
  std::vector<std::pair<std::string, CtScheme>> groups;  // config_groups in file order
  std::vector<std::string> ignore;

  // The scheme that covers Linear module `module`, or null when none does (or it is
  // ignored): its weight is then stored dense as P.weight.
  Expected<const CtScheme*> scheme_for(const std::string& module) const;
};

inline constexpr const char* kCtFormatPacked = "pack-quantized";
inline constexpr const char* kCtFormatFloat = "float-quantized";
inline constexpr const char* kCtFormatNvfp4 = "nvfp4-pack-quantized";

// Parses the "quantization_config" object; errors name `where` and the key. Only
// weight schemes lowbit can decode are accepted.
Expected<CtConfig> parse_ct_config(const nlohmann::json& quantization_config, const std::string& where);
// The "quantization_config" object of `config` (quantization_status "compressed").
nlohmann::ordered_json ct_config_to_json(const CtConfig& config);

// The stored tensors of one module (null where absent).
struct CtModuleTensors {
  const SafetensorsTensor* weight = nullptr;
  const SafetensorsTensor* weight_packed = nullptr;
  const SafetensorsTensor* weight_scale = nullptr;
  const SafetensorsTensor* weight_zero_point = nullptr;
  const SafetensorsTensor* weight_shape = nullptr;
  const SafetensorsTensor* weight_global_scale = nullptr;
};

// W [rows, cols] of a module stored under `scheme`; every shape and dtype is
// checked, errors name `where` (file and module).
Expected<std::vector<float>> ct_dequantize(const CtScheme& scheme, const CtModuleTensors& t, int64_t rows,
                                           int64_t cols, const std::string& where);

// Packing along the columns: `codes` [rows, cols] of unsigned b-bit values (b in
// 1..8) -> [rows, ceil(cols*b/32)] int32 words as little-endian bytes.
std::vector<uint8_t> ct_pack_rows(const uint8_t* codes, int64_t rows, int64_t cols, int bits);
// Packing along the rows (zero points): `codes` [rows, cols] -> [ceil(rows*b/32), cols] words.
std::vector<uint8_t> ct_pack_columns(const uint8_t* codes, int64_t rows, int64_t cols, int bits);
int64_t ct_packed_words(int64_t n, int bits);

// The element formats, decoded from their bit layouts: FP8 E4M3 (OCP "fn",
// 0x7f/0xff are NaN) and FP4 E2M1 (low 4 bits of `code`).
float ct_fp8_e4m3_to_float(uint8_t code);
float ct_fp4_e2m1_to_float(uint8_t code);

}  // namespace lowbit
