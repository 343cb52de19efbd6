// The menu of a size-budget allocation (issue 15): the candidates each tensor may
// be stored as, a method and a format each. A menu is a JSON document
//   {"name": "...", "description": "...",
//    "candidates": [{"name": "q4_K", "method": "gptq", "format": "q4_K", "options": {...}}, ...]}
// whose candidates are recipe rules (pipeline/recipe.h) without "match". A
// candidate applies to every tensor whose shape its format holds (no fallback:
// the allocator simply does not offer it elsewhere). The two tables take the
// data-free or importance-weighted form of a candidate, as the pipeline allows
// them (recipe.h): token_embedding RTN without importance, lm_head RTN with
// importance (diag H of the head's input) when calibrated; "none" (fp16/bf16/fp32)
// stays as it is everywhere.
//
// Built-in menus (builtin_size_menus()):
//   gguf    llama.cpp's block types, GPTQ with diag(H)-weighted block headers, and
//           FP16: every allocation exports to a GGUF file llama.cpp runs.
//   gguf-rtn the same types by round to nearest (same headers): a sensitivity pass
//           several times cheaper, for quick runs.
//   lowbit  lowbit's scaled formats (integers of 2-8 bits in groups, NF4, NVFP4,
//           MXFP4, FP8) with GPTQ, and FP16: the research menu.
//   tcq     trellis codes (tcq2/2p5/3/4 with an FP16 scale per 256) by BlockLDLQ,
//           INT8 per row and FP16.
//   all     gguf, lowbit and the trellis codes.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "pipeline/recipe.h"

namespace lowbit {

struct MenuCandidate {
  std::string name;      // label in reports, e.g. "q4_K" or "int3_g64_asym"
  QuantRule rule;        // method, format, options; "match" unused
  nlohmann::json json;   // the rule as written in the menu, without "name"
};

struct SizeMenu {
  std::string name;
  std::string description;
  std::string source;  // "built-in" or the file path
  std::vector<MenuCandidate> candidates;
};

// Which kind of tensor a candidate is asked for.
enum class MenuTensor { kLinear, kLmHead, kTokenEmbedding };

MenuTensor menu_tensor_kind(const std::string& name);

// The rule a candidate becomes for tensor `name` of shape [rows, cols], or nullopt
// when its format cannot hold that shape. `calibrated`: whether the lm_head may use
// importance.
Expected<std::optional<QuantRule>> candidate_rule(const MenuCandidate& candidate, const std::string& name,
                                                  int64_t rows, int64_t cols, bool calibrated);

// The rule as a recipe rule object {"match": "^name$", "method", "format", "options"}
// (options only those its method reads), so a recipe written from it parses back
// to the same rule.
nlohmann::json candidate_rule_json(const QuantRule& rule, const std::string& tensor_name);

Expected<SizeMenu> parse_size_menu(const nlohmann::json& document, const std::string& source);
// A built-in name, else a JSON file.
Expected<SizeMenu> load_size_menu(const std::string& name_or_path);
std::vector<std::string> builtin_size_menu_names();

}  // namespace lowbit
