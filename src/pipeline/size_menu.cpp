#include "pipeline/size_menu.h"

#include <fmt/format.h>

#include "core/mapped_file.h"
#include "formats/block_format.h"
#include "io/untrusted_json.h"

namespace lowbit {
namespace {

using json = nlohmann::json;

// GPTQ with the block headers (scales, minimums) chosen weighted by diag(H), as the
// built-in q4_K-gptq recipe does: better on every GGUF type measured (docs/FORMAT.md).
json gptq(const std::string& format) {
  return {{"name", format}, {"method", "gptq"}, {"format", format}, {"options", {{"importance", true}}}};
}

// Round to nearest with the same diag(H)-weighted headers: no GPTQ solve per
// candidate, so the sensitivity pass costs a fraction of the gptq menu's.
json rtn(const std::string& format) {
  return {{"name", format}, {"method", "rtn"}, {"format", format}, {"options", {{"importance", true}}}};
}

json fp16_candidate() { return {{"name", "fp16"}, {"method", "none"}, {"format", "fp16"}}; }

json gguf_candidates(json (*method)(const std::string&)) {
  json c = json::array();
  for (const char* t : {"q2_K", "q3_K", "q4_0", "q4_1", "iq4_nl", "q4_K", "q5_0", "q5_1", "q5_K", "q6_K", "q8_0"}) {
    c.push_back(method(t));
  }
  return c;
}

// Asymmetric integers of 2-6 bits in groups of 32/64/128 and INT8 per row, then the
// 4-bit floats and FP8: 20 candidates.
json lowbit_candidates() {
  json c = json::array();
  for (int bits : {2, 3, 4, 5, 6}) {
    for (int group : {32, 64, 128}) {
      const BlockFormat* f = find_asymmetric_int_format(bits, group);
      if (f != nullptr) c.push_back(gptq(f->name()));
    }
  }
  for (const char* f : {"int8_pc", "nf4_g64", "mxfp4", "nvfp4", "fp8_e4m3"}) c.push_back(gptq(f));
  return c;
}

// Trellis codes of 2, 2.5, 3 and 4 bits with an FP16 scale per 256 (BlockLDLQ; the
// group of the built-in recipes, recipe_builtin.cpp), for inputs of whole 64-sequences.
json tcq_candidates() {
  json c = json::array();
  for (const char* f : {"tcq2_g256", "tcq2p5_g256", "tcq3_g256", "tcq4_g256"}) c.push_back(gptq(f));
  return c;
}

json builtin_document(const std::string& name) {
  json candidates = json::array();
  std::string description;
  if (name == "gguf" || name == "all") {
    for (const json& c : gguf_candidates(gptq)) candidates.push_back(c);
    description = "llama.cpp block types by GPTQ (diag(H)-weighted headers) and FP16: exports to GGUF";
  }
  if (name == "gguf-rtn") {
    for (const json& c : gguf_candidates(rtn)) candidates.push_back(c);
    description = "llama.cpp block types by round to nearest (diag(H)-weighted headers) and FP16: exports to GGUF, fast";
  }
  if (name == "lowbit" || name == "all") {
    for (const json& c : lowbit_candidates()) candidates.push_back(c);
    description = name == "all" ? "the gguf, lowbit and tcq menus together"
                                : "lowbit's scaled formats (INT2-8 groups, NF4, NVFP4, MXFP4, FP8) by GPTQ, and FP16";
  }
  if (name == "tcq" || name == "all") {
    for (const json& c : tcq_candidates()) candidates.push_back(c);
    if (name == "tcq") {
      candidates.push_back(gptq("int8_pc"));
      description = "trellis codes (2, 2.5, 3, 4 bits, FP16 scale per 256) by BlockLDLQ, INT8 per row and FP16";
    }
  }
  candidates.push_back(fp16_candidate());
  return {{"name", name}, {"description", description}, {"candidates", candidates}};
}

json rtn_options(const RuleOptions& o, bool importance) {
  return {{"search", o.search == ScaleSearch::kMseClip ? "mse" : "minmax"}, {"importance", importance}};
}

}  // namespace

std::vector<std::string> builtin_size_menu_names() { return {"gguf", "gguf-rtn", "lowbit", "tcq", "all"}; }

MenuTensor menu_tensor_kind(const std::string& name) {
  if (name == "lm_head") return MenuTensor::kLmHead;
  if (name == "token_embedding") return MenuTensor::kTokenEmbedding;
  return MenuTensor::kLinear;
}

Expected<std::optional<QuantRule>> candidate_rule(const MenuCandidate& candidate, const std::string& name,
                                                  int64_t rows, int64_t cols, bool calibrated) {
  QuantRule rule = candidate.rule;
  rule.fallback.clear();
  const MenuTensor kind = menu_tensor_kind(name);
  if (kind != MenuTensor::kLinear && rule.method != QuantMethod::kNone) {
    // The tables take RTN only (recipe.h); lm_head weighted by its input's diag(H).
    rule.method = QuantMethod::kRtn;
    rule.options.importance = kind == MenuTensor::kLmHead && calibrated;
    rule.options.lorc_rank = 0;
  }
  if (rule.method != QuantMethod::kNone && !calibrated && method_needs_calibration(rule.method)) {
    return make_error("size menu candidate {} ({}) needs calibration data (--calib)", candidate.name,
                      quant_method_name(rule.method));
  }
  if (rule.format != "fp32") {
    LB_ASSIGN_OR_RETURN(WeightFormat f, WeightFormat::find(rule.format));
    if (!f.check_shape(rows, cols).ok()) return std::optional<QuantRule>();
  }
  return std::optional<QuantRule>(std::move(rule));
}

json candidate_rule_json(const QuantRule& rule, const std::string& tensor_name) {
  std::string escaped;
  for (char ch : tensor_name) {
    if (ch == '.') escaped += '\\';
    escaped += ch;
  }
  json j = {{"match", "^" + escaped + "$"}, {"method", quant_method_name(rule.method)}, {"format", rule.format}};
  const RuleOptions& o = rule.options;
  switch (rule.method) {
    case QuantMethod::kNone: break;
    case QuantMethod::kRtn: j["options"] = rtn_options(o, o.importance); break;
    case QuantMethod::kGptq:
      j["options"] = {{"damp", o.damp},
                      {"block_size", o.block_size},
                      {"act_order", o.act_order},
                      {"static_groups", o.static_groups},
                      {"search", o.search == ScaleSearch::kMseClip ? "mse" : "minmax"},
                      {"importance", o.importance}};
      break;
    case QuantMethod::kAwq:
    case QuantMethod::kEasyQuant: break;  // refused by parse_size_menu
  }
  return j;
}

Expected<SizeMenu> parse_size_menu(const json& document, const std::string& source) {
  if (!document.is_object()) return make_error("menu {}: must be a JSON object", source);
  for (const auto& [key, value] : document.items()) {
    if (key != "name" && key != "description" && key != "candidates") {
      return make_error("menu {}: unknown key '{}' (known: name, description, candidates)", source, key);
    }
  }
  SizeMenu menu;
  menu.source = source;
  if (document.contains("name") && document["name"].is_string()) menu.name = document["name"].get<std::string>();
  if (document.contains("description") && document["description"].is_string()) {
    menu.description = document["description"].get<std::string>();
  }
  if (!document.contains("candidates") || !document["candidates"].is_array() || document["candidates"].empty()) {
    return make_error("menu {}: needs a non-empty \"candidates\" array", source);
  }
  for (size_t i = 0; i < document["candidates"].size(); ++i) {
    const json& c = document["candidates"][i];
    const std::string where = fmt::format("menu {}: candidate {}", source, i);
    if (!c.is_object()) return make_error("{}: must be an object", where);
    if (c.contains("match") || c.contains("fallback") || c.contains("act")) {
      return make_error("{}: \"match\", \"fallback\" and \"act\" have no meaning in a menu", where);
    }
    MenuCandidate candidate;
    candidate.json = c;
    candidate.json.erase("name");
    LB_ASSIGN_OR_RETURN(Recipe one, parse_recipe(json{{"name", "candidate"}, {"default", candidate.json}}, where));
    candidate.rule = one.default_rule;
    if (candidate.rule.method == QuantMethod::kAwq || candidate.rule.method == QuantMethod::kEasyQuant) {
      // AWQ folds scales into the previous layer and so changes its neighbours: a
      // per-tensor cost is not additive. EasyQuant keeps a data-dependent number of outliers.
      return make_error("{}: method {} cannot be allocated per tensor (use gptq, rtn or none)", where,
                        quant_method_name(candidate.rule.method));
    }
    if (candidate.rule.options.lorc_rank > 0) return make_error("{}: lorc_rank is not offered in a menu", where);
    if (candidate.rule.options.adaquant_steps > 0 || candidate.rule.options.bias_correction) {
      return make_error("{}: adaquant_steps and bias_correction are not offered in a menu", where);
    }
    candidate.name = c.contains("name") && c["name"].is_string() ? c["name"].get<std::string>()
                                                                  : candidate.rule.format;
    for (const MenuCandidate& other : menu.candidates) {
      if (other.name == candidate.name) return make_error("{}: name \"{}\" appears twice", where, candidate.name);
    }
    menu.candidates.push_back(std::move(candidate));
  }
  return menu;
}

Expected<SizeMenu> load_size_menu(const std::string& name_or_path) {
  for (const std::string& name : builtin_size_menu_names()) {
    if (name_or_path == name) return parse_size_menu(builtin_document(name), "built-in " + name);
  }
  auto text = read_text_file(name_or_path);
  if (!text.ok()) {
    return make_error("--menu {}: neither a built-in menu (gguf, lowbit, all) nor a readable file ({})",
                      name_or_path, text.status().message());
  }
  LB_ASSIGN_OR_RETURN(const json doc, parse_untrusted_json(text.value(), "menu " + name_or_path));
  return parse_size_menu(doc, name_or_path);
}

}  // namespace lowbit
