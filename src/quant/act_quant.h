// Simulated (fake) quantization of activations: the input x [n_tokens, in] of a
// linear layer is quantized and dequantized in FP32, so the layer then sees what
// a W·A kernel on low-bit activations would see. Real low-bit kernels are the
// runtime issue's work; this measures the accuracy.
//
// A spec names the number format and where the scales live (JSON in recipes,
// key "act" of a rule):
//   {"format": "int8", "granularity": "tensor" | "token" | "group", "group": 32, "clip": 1.0}
// format: an element format of formats/element_format.h ("int8", "int4",
//   "fp8_e4m3", "fp4_e2m1", ..., signed only; "fp8" and "fp4" are aliases of E4M3
//   and E2M1), or a named scaled format of formats/block_format.h ("mxfp8_e4m3",
//   "mxfp4", "nvfp4", ...; "mxfp8" is an alias of mxfp8_e4m3), which brings its own
//   block size, scale type and scale rule; or one of llama.cpp's activation types
//   (formats/ggml_activations.h: "ggml_f16", "ggml_bf16", "ggml_q8_0",
//   "ggml_q8_1", "ggml_q8_K"), the values its CPU backend multiplies a GGUF
//   weight by, with llama.cpp's own scale rules (no clip; blocks of 32 or 256).
// granularity (element formats; a named format takes its own: row → token,
//   group → group with its block size):
//   tensor  static: one threshold T per linear input, calibrated on data
//           (T = clip · max |x| over the calibration inputs, stored in the model
//           file), s = T / vmax, values beyond ±T saturate.
//   token   dynamic: s = clip · max_c |x[t, c]| / vmax per token (row).
//   group   dynamic: one scale per `group` consecutive inputs of a token (16, 32,
//           ...; MX/NVFP4-style blocks along the input dimension), FP32 scales.
// clip in (0, 1]: dynamic scales use clip · amax of their block and values beyond
//   saturate; with a named format each block is first clamped to ±clip · amax,
//   then quantized by the format library (so its scale rule sees the clipped max).
//
// Element formats: y = clamp(x / s, lo, hi), codes by the element kernel (round
// to nearest even), x̂ = decode(code) · s. This is the formats library's FP32
// absmax scale path, computed here so a static T can be used (tested equal to
// the library for clip 1). Named formats: each token row is quantized on its own
// (BlockKernel), so a row's result does not depend on the other rows of the batch
// (NVFP4's FP32 second-level scale is the row's amax / (6 · 448)).
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "core/status.h"
#include "core/thread_pool.h"
#include "formats/block_format.h"
#include "formats/element_kernel.h"
#include "formats/ggml_activations.h"

namespace lowbit {

enum class ActGranularity { kTensor, kToken, kGroup };

const char* act_granularity_name(ActGranularity g);

struct ActQuantSpec {
  std::string format = "int8";
  ActGranularity granularity = ActGranularity::kToken;
  int group = 32;     // kGroup only
  float clip = 1.0f;  // (0, 1]

  // Per-tensor static: needs a calibrated threshold.
  bool is_static() const { return granularity == ActGranularity::kTensor; }
};

// Parses and checks a spec (format known and signed, granularity, group in [1,
// 4096], clip in (0, 1]); errors name `where`. A named scaled format sets the
// granularity and group from the format ("granularity"/"group" must then agree
// or be absent).
Expected<ActQuantSpec> parse_act_spec(const nlohmann::json& j, const std::string& where);
// The canonical JSON of a spec (what parse_act_spec reads back to the same spec).
nlohmann::json act_spec_json(const ActQuantSpec& spec);
// Bits per activation element, scales included (per-token/tensor scales of an
// FP32 value counted per row of `in` elements).
double act_bits_per_element(const ActQuantSpec& spec, int64_t in_features);

// The activation quantizer of one linear as a model file stores it: the spec
// and, for per-tensor static specs, the calibrated threshold T.
struct ActQuantAttachment {
  ActQuantSpec spec;
  float static_threshold = 0.0f;
};
// JSON of the record field "act" (model/lowbit_file.h): the spec plus "threshold".
nlohmann::json act_attachment_json(const ActQuantAttachment& a);
Expected<ActQuantAttachment> parse_act_attachment(const nlohmann::json& j, const std::string& where);

// The activation quantizer that reproduces llama.cpp's CPU arithmetic in front
// of a weight stored as GGUF type `weight`: its vec_dot type (io/ggml_types.h
// act_type) as an act spec ("ggml_q8_K" for a Q4_K weight, "ggml_f16" for F16).
// nullopt for F32 weights (the product is FP32 there, as lowbit's) and for types
// lowbit does not decode.
std::optional<ActQuantSpec> llamacpp_act_spec(GgmlType weight);

class ActQuantizer {
 public:
  static Expected<ActQuantizer> create(const ActQuantSpec& spec);

  const ActQuantSpec& spec() const { return spec_; }

  // x [n_tokens, in] → fake-quantized into out [n_tokens, in] (may alias x).
  // static_threshold: T of a per-tensor static spec (> 0 and finite), unused
  // otherwise. Rows are processed in parallel on `pool` (may be null: inline).
  // Non-finite inputs are an error.
  Status apply(const float* x, int64_t n_tokens, int64_t in, float* out, float static_threshold,
               ThreadPool* pool = nullptr) const;

 private:
  ActQuantizer() = default;
  Status apply_rows(const float* x, int64_t r0, int64_t r1, int64_t in, float* out, float threshold) const;

  ActQuantSpec spec_;
  std::shared_ptr<const BlockFormat> element_format_;  // element path: FP32-scale format holding vmax, lo, hi
  std::shared_ptr<const ElementKernel> kernel_;        // element path
  const BlockFormat* named_ = nullptr;                 // named scaled format path
  const GgmlActType* ggml_ = nullptr;                  // llama.cpp activation type path
  std::shared_ptr<const BlockKernel> block_kernel_;    // named path
};

}  // namespace lowbit
