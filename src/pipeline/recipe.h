// Quantization recipes: which method and number format each tensor of a model
// gets. A recipe is a JSON document
//   {"name": "...", "description": "...", "true_sequential": false,
//    "rules": [{"match": "<regex>", "method": "...", "format": "...", "options": {...},
//               "act": {"format": "int8", "granularity": "tensor|token|group", "group": 32, "clip": 1.0}}, ...],
//    "default": {"method": "...", "format": "...", "options": {...}},
//    "rotation": {"seed": 0, "online_down": true, "rotate_v_heads": false},
//    "smooth": {"alpha": 0.5, ...}, "osp": {"grid": 20, ...}}
// Tensor names are the model's linear names ("layers.{i}.q_proj" ... "down_proj",
// "lm_head") and "token_embedding". A rule matches a name when its regex (PCRE2
// syntax, searched, so anchor with ^...$ for a whole-name match) finds it; the
// first matching rule wins. Names no rule matches: decoder linears take
// "default"; lm_head and token_embedding keep FP16 (kUnmatchedTableRule), as
// most PTQ papers keep the embedding and the output head unquantized. A tied
// lm_head is the token embedding and follows it.
//
// Recipes are user files, so the regex is a core/bounded_regex.h BoundedRegex
// (PCRE2 with length, nesting, match and depth limits) rather than std::regex,
// which recurses per parenthesis (30,000 nested ones overflow the stack) and
// backtracks without bound: a pattern over a limit is an error naming the rule.
//
// "act" (optional, rules and default) fake-quantizes the linear's input
// activations (quant/act_quant.h); a per-tensor static spec ("granularity":
// "tensor") needs calibration data for its threshold.
//
// Methods: none (store as fp32/fp16/bf16), rtn, gptq, awq, easyquant; formats:
// "fp32", a scaled format name from formats/block_format.h or a GGUF block type
// from formats/gguf_blocks.h ("q4_K", "q8_0", ...; quant/weight_format.h), the
// latter with rtn, gptq and awq. GPTQ, AWQ and RTN with "importance" need
// calibration data; token_embedding takes only data-free methods, lm_head also
// rtn with importance (diag(H) of the head's input after the last layer).
//
// "fallback" (optional, rules and default): a format name or a list of them, for
// the tensors whose shape the rule's format cannot hold (a GGUF type needs
// cols to be a multiple of its block size, 32 or 256): the first that holds it
// is used, with the rule's method (fp32/fp16/bf16: stored with method none), as
// llama.cpp falls back from q4_K to q5_0 on 576-wide rows. Without one such a
// tensor is an error naming it, its format and its shape (resolve_rule).
//
// The built-in recipes (builtin_recipes()) are JSON texts of the same schema, so
// `lowbit quantize --list-recipes --verbose` prints what a recipe file would contain.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/bounded_regex.h"
#include "core/status.h"
#include "formats/block_format.h"
#include "model/config.h"
#include "model/rotation_spec.h"
#include "pipeline/migration_spec.h"
#include "quant/act_quant.h"
#include "quant/weight_format.h"

namespace lowbit {

enum class QuantMethod { kNone, kRtn, kGptq, kAwq, kEasyQuant };

const char* quant_method_name(QuantMethod m);
bool method_needs_calibration(QuantMethod m);

// Per-rule knobs; which ones a method reads is listed in docs/FORMAT.md. JSON keys
// are the field names.
struct RuleOptions {
  ScaleSearch search = ScaleSearch::kMinMax;  // "minmax" | "mse": clipping search of every scale
  bool importance = false;                    // rtn, gptq: weight the scale search by diag(H) (imatrix)
  float damp = 0.01f;                         // gptq, adaquant: λ = damp · mean(diag H)
  int block_size = 128;                       // gptq: lazy batch
  bool act_order = false;                     // gptq: columns by descending diag(H)
  bool static_groups = false;                 // gptq
  int awq_grid = 20;                          // awq: α grid points in [0, 1]
  int awq_tokens = 4096;                      // awq: calibration rows kept for the scale search
  float outlier_fraction = 0.005f;            // easyquant: weights kept exactly
  int lorc_rank = 0;                          // any method: rank of the LoRC correction (0 = none)
  std::string lorc_format = "int8_pc";        // format of the LoRC factors U, V
  // rtn, gptq, awq on a scaled format: AdaQuant refinement of the result's scales and
  // rounding on H (quant/adaquant.h), this many steps (0 = none); needs calibration.
  int adaquant_steps = 0;
  bool adaquant_scales = true;                // adaquant: refit group scales/minimums too
  // rtn, gptq, awq: the mean output error (W − Ŵ) x̄ on the calibration inputs added to
  // the linear's FP32 bias (created when absent); needs calibration.
  bool bias_correction = false;
};

struct QuantRule {
  int index = -1;     // position in "rules"; -1 for "default" and the implicit rules
  std::string match;  // the regex text ("" for default)
  std::optional<BoundedRegex> regex;  // set for rules with a "match"
  QuantMethod method = QuantMethod::kNone;
  std::string format = "fp32";  // "fp32" or a weight format name (quant/weight_format.h)
  RuleOptions options;
  std::vector<std::string> fallback;  // "fallback": formats tried in order where `format` cannot hold the shape
  std::string fallback_from;  // set by resolve_rule: the format this rule replaced ("" = none)
  // Fake quantization of the linear's input ("act": quant/act_quant.h); none = FP32 inputs.
  std::optional<ActQuantSpec> act;
  bool implicit = false;  // kUnmatchedTableRule

  bool keeps_fp32() const { return format == "fp32"; }
  // "rule 2 (/lm_head/)" or "default", for messages.
  std::string label() const;
};

struct Recipe {
  std::string name;
  std::string description;
  std::string source;  // "built-in" or the file path, for messages
  bool true_sequential = false;
  // "rotation": {"seed": 0, "online_down": true, "rotate_v_heads": false} (all
  // optional): QuaRot-style rotation before any other step (pipeline/rotation.h).
  std::optional<RotationSpec> rotation;
  // "smooth" / "osp": SmoothQuant / Outlier Suppression+ after the rotation and
  // before weight quantization (pipeline/migration_spec.h).
  std::optional<SmoothSpec> smooth;
  std::optional<OspSpec> osp;
  std::vector<QuantRule> rules;
  QuantRule default_rule;
  nlohmann::json json;  // the document as parsed (stored in the quantized file)

  // The rule that applies to a tensor name (see the file comment); an error
  // when a rule's regex exceeds a BoundedRegex limit on the name.
  Expected<const QuantRule*> rule_for(const std::string& name) const;
  // Whether any tensor of a model with this config needs calibration data.
  Expected<bool> needs_calibration(const ModelConfig& config) const;
  // Whether the quantized model stores lm_head: untied, or untied by the rotation.
  bool stores_lm_head(const ModelConfig& config) const;
};

// The rule for lm_head / token_embedding when no rule of the recipe matches them.
extern const QuantRule kUnmatchedTableRule;

// Parses and checks a recipe document; errors name `source` and the rule.
Expected<Recipe> parse_recipe(const nlohmann::json& document, const std::string& source);
// A built-in name, else a JSON file.
Expected<Recipe> load_recipe(const std::string& name_or_path);

struct BuiltinRecipe {
  const char* name;
  const char* json;  // a recipe document
};
const std::vector<BuiltinRecipe>& builtin_recipes();

// The weight format a rule quantizes with; error for "fp32".
Expected<WeightFormat> rule_format(const QuantRule& rule);

// The rule as it applies to tensor `name` of shape [rows, cols]: `rule` itself
// when its format holds the shape, else a copy with the first fallback format
// that does (fallback_from set to the rule's format; an fp32/fp16/bf16 fallback
// turns the method into none). Error naming the tensor, the format and the
// shape when none does.
Expected<QuantRule> resolve_rule(const QuantRule& rule, const std::string& name, int64_t rows, int64_t cols);

// Bits per weight a rule stores for a rows x cols matrix (after resolve_rule):
// the format's codes and scales, plus for EasyQuant 96 bits per kept outlier
// (row, col, value) and for LoRC the factors U [rows, r] and V [r, cols] in their format.
Expected<double> rule_bits_per_weight(const QuantRule& rule, int64_t rows, int64_t cols);

// Bits per weight of a recipe on a model: over the decoder linears only, and over
// every stored parameter (linears, embedding, lm_head, norms).
struct RecipeSize {
  double linear_bpw = 0.0;
  double model_bpw = 0.0;
  uint64_t model_bytes = 0;
  // Bits per input activation of the decoder linears (scales included, mean
  // weighted by input width); 32 where inputs stay FP32.
  double act_bits = 32.0;
};
Expected<RecipeSize> recipe_size(const Recipe& recipe, const ModelConfig& config);

// SmolLM2-135M's shapes, the reference model of `--list-recipes`.
ModelConfig smollm2_135m_config();

}  // namespace lowbit
