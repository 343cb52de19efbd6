#include "pipeline/recipe.h"

#include <cmath>
#include <set>

#include "core/mapped_file.h"
#include "io/untrusted_json.h"

namespace lowbit {
namespace {

using json = nlohmann::json;

struct MethodName {
  QuantMethod method;
  const char* name;
};
constexpr MethodName kMethods[] = {{QuantMethod::kNone, "none"},
                                   {QuantMethod::kRtn, "rtn"},
                                   {QuantMethod::kGptq, "gptq"},
                                   {QuantMethod::kAwq, "awq"},
                                   {QuantMethod::kEasyQuant, "easyquant"}};

bool is_table_name(const std::string& name) { return name == "lm_head" || name == "token_embedding"; }

QuantRule make_unmatched_table_rule() {
  QuantRule r;
  r.method = QuantMethod::kNone;
  r.format = "fp16";
  r.implicit = true;
  return r;
}

// Reads one option into `field` with a range check; the error names the rule.
class OptionReader {
 public:
  OptionReader(const json& options, std::string where) : options_(options), where_(std::move(where)) {}

  Status check_keys() const {
    static const std::set<std::string> known = {"search",           "importance",    "damp",       "block_size",
                                                "act_order",        "static_groups", "awq_grid",   "awq_tokens",
                                                "outlier_fraction", "lorc_rank",     "lorc_format",
                                                "adaquant_steps",   "adaquant_scales", "bias_correction"};
    for (const auto& [key, value] : options_.items()) {
      if (known.count(key) == 0) {
        std::string list;
        for (const std::string& k : known) list += (list.empty() ? "" : ", ") + k;
        return make_error("{}: unknown option '{}' (known: {})", where_, key, list);
      }
    }
    return Status::ok_status();
  }

  Status read_bool(const char* key, bool& field) const {
    if (!options_.contains(key)) return Status::ok_status();
    if (!options_[key].is_boolean()) return make_error("{}: option '{}' must be true or false", where_, key);
    field = options_[key].get<bool>();
    return Status::ok_status();
  }

  Status read_int(const char* key, int& field, int lo, int hi) const {
    if (!options_.contains(key)) return Status::ok_status();
    const json& v = options_[key];
    if (!v.is_number_integer() || v.get<int64_t>() < lo || v.get<int64_t>() > hi) {
      return make_error("{}: option '{}' must be an integer in [{}, {}], got {}", where_, key, lo, hi,
                        describe_json(v));
    }
    field = v.get<int>();
    return Status::ok_status();
  }

  Status read_float(const char* key, float& field, float lo, float hi, bool open_lo) const {
    if (!options_.contains(key)) return Status::ok_status();
    const json& v = options_[key];
    const double d = v.is_number() ? v.get<double>() : std::nan("");
    if (!v.is_number() || !std::isfinite(d) || d > hi || d < lo || (open_lo && d == lo)) {
      return make_error("{}: option '{}' must be a number in {}{}, {}], got {}", where_, key, open_lo ? "(" : "[", lo,
                        hi, describe_json(v));
    }
    field = static_cast<float>(d);
    return Status::ok_status();
  }

  Status read_string(const char* key, std::string& field) const {
    if (!options_.contains(key)) return Status::ok_status();
    if (!options_[key].is_string()) return make_error("{}: option '{}' must be a string", where_, key);
    field = options_[key].get<std::string>();
    return Status::ok_status();
  }

 private:
  const json& options_;
  std::string where_;
};

Status read_options(const json& j, const std::string& where, RuleOptions& o) {
  if (!j.is_object()) return make_error("{}: 'options' must be an object", where);
  const OptionReader r(j, where);
  LB_RETURN_IF_ERROR(r.check_keys());
  std::string search = o.search == ScaleSearch::kMseClip ? "mse" : "minmax";
  LB_RETURN_IF_ERROR(r.read_string("search", search));
  if (search != "minmax" && search != "mse") {
    return make_error("{}: option 'search' must be \"minmax\" or \"mse\", got \"{}\"", where, search);
  }
  o.search = search == "mse" ? ScaleSearch::kMseClip : ScaleSearch::kMinMax;
  LB_RETURN_IF_ERROR(r.read_bool("importance", o.importance));
  LB_RETURN_IF_ERROR(r.read_float("damp", o.damp, 0.0f, 1.0f, true));
  LB_RETURN_IF_ERROR(r.read_int("block_size", o.block_size, 1, 4096));
  LB_RETURN_IF_ERROR(r.read_bool("act_order", o.act_order));
  LB_RETURN_IF_ERROR(r.read_bool("static_groups", o.static_groups));
  LB_RETURN_IF_ERROR(r.read_int("awq_grid", o.awq_grid, 1, 1000));
  LB_RETURN_IF_ERROR(r.read_int("awq_tokens", o.awq_tokens, 1, 1 << 20));
  LB_RETURN_IF_ERROR(r.read_float("outlier_fraction", o.outlier_fraction, 0.0f, 0.5f, false));
  LB_RETURN_IF_ERROR(r.read_int("lorc_rank", o.lorc_rank, 0, 4096));
  LB_RETURN_IF_ERROR(r.read_string("lorc_format", o.lorc_format));
  LB_RETURN_IF_ERROR(r.read_int("adaquant_steps", o.adaquant_steps, 0, 1000));
  LB_RETURN_IF_ERROR(r.read_bool("adaquant_scales", o.adaquant_scales));
  LB_RETURN_IF_ERROR(r.read_bool("bias_correction", o.bias_correction));
  return Status::ok_status();
}

Status check_format_name(const std::string& name, const std::string& where, const char* what) {
  if (name == "fp32") return Status::ok_status();
  auto f = WeightFormat::find(name);
  if (!f.ok()) return f.status().with_context(fmt::format("{}: {}", where, what));
  return Status::ok_status();
}

bool is_float_storage(const std::string& format) { return format == "fp32" || format == "fp16" || format == "bf16"; }

bool is_gguf_format(const std::string& format) { return find_gguf_block_type(format) != nullptr; }

// Method/format combinations that make sense.
Status check_rule(const QuantRule& r, const std::string& where) {
  LB_RETURN_IF_ERROR(check_format_name(r.format, where, "format"));
  if (r.method == QuantMethod::kNone) {
    if (r.format != "fp32" && r.format != "fp16" && r.format != "bf16") {
      return make_error("{}: method \"none\" stores fp32, fp16 or bf16, not \"{}\" (use rtn to quantize)", where,
                        r.format);
    }
    if (r.options.lorc_rank > 0) return make_error("{}: lorc_rank needs a quantizing method, not \"none\"", where);
  } else if (r.keeps_fp32()) {
    return make_error("{}: method \"{}\" needs a scaled format, not \"fp32\" (use method \"none\")", where,
                      quant_method_name(r.method));
  }
  if (r.options.importance && r.method != QuantMethod::kRtn && r.method != QuantMethod::kGptq) {
    return make_error("{}: option 'importance' applies to rtn and gptq only", where);
  }
  if (is_ptq161_format_name(r.format) && r.method != QuantMethod::kRtn && r.method != QuantMethod::kAwq) {
    return make_error("{}: PTQ1.61 format \"{}\" takes rtn (with 'importance': the calibrated mask) or awq, not {}",
                      where, r.format, quant_method_name(r.method));
  }
  if (r.method == QuantMethod::kEasyQuant && is_gguf_format(r.format)) {
    return make_error("{}: easyquant keeps outliers beside scaled formats; GGUF type \"{}\" needs rtn, gptq or awq",
                      where, r.format);
  }
  if (r.options.lorc_rank > 0) LB_RETURN_IF_ERROR(check_format_name(r.options.lorc_format, where, "lorc_format"));
  const bool calibrates = r.method == QuantMethod::kRtn || r.method == QuantMethod::kGptq || r.method == QuantMethod::kAwq;
  if ((r.options.adaquant_steps > 0 || r.options.bias_correction) && !calibrates) {
    return make_error("{}: option '{}' applies to rtn, gptq and awq only, not \"{}\"", where,
                      r.options.adaquant_steps > 0 ? "adaquant_steps" : "bias_correction", quant_method_name(r.method));
  }
  if (r.options.adaquant_steps > 0) {
    // The format name was checked above; GGUF types, trellis and VQ codes and PTQ1.61 have no
    // scale grid for AdaQuant to refine.
    auto f = WeightFormat::find(r.format);
    if (f.ok() && f->block_format() == nullptr) {
      const char* family = f->gguf_type() != nullptr        ? "GGUF type"
                           : f->trellis_params() != nullptr ? "trellis codes"
                           : f->vq_params() != nullptr      ? "VQ codes"
                                                            : "PTQ1.61 format";
      return make_error("{}: adaquant refines scaled formats (formats/block_format.h), not {} \"{}\"", where, family,
                        r.format);
    }
  }
  if (!r.fallback.empty() && r.method == QuantMethod::kNone) {
    return make_error("{}: \"fallback\" needs a quantizing method, not \"none\" ({} holds every shape)", where,
                      r.format);
  }
  for (const std::string& f : r.fallback) {
    LB_RETURN_IF_ERROR(check_format_name(f, where, "fallback"));
    if (r.method == QuantMethod::kEasyQuant && is_gguf_format(f)) {
      return make_error("{}: easyquant cannot fall back to GGUF type \"{}\"", where, f);
    }
    if (f == r.format) return make_error("{}: fallback \"{}\" is the rule's own format", where, f);
  }
  return Status::ok_status();
}

Status read_fallback(const json& j, const std::string& where, std::vector<std::string>& out) {
  if (j.is_string()) {
    out = {j.get<std::string>()};
    return Status::ok_status();
  }
  if (j.is_array() && !j.empty()) {
    for (const json& f : j) {
      if (!f.is_string()) return make_error("{}: \"fallback\" must be a format name or a list of them", where);
      out.push_back(f.get<std::string>());
    }
    return Status::ok_status();
  }
  return make_error("{}: \"fallback\" must be a format name or a non-empty list of them", where);
}

Expected<QuantRule> read_rule(const json& j, int index, const std::string& source) {
  const std::string where =
      index >= 0 ? fmt::format("recipe {}: rule {}", source, index) : fmt::format("recipe {}: default", source);
  if (!j.is_object()) return make_error("{}: must be an object", where);
  for (const auto& [key, value] : j.items()) {
    if (key != "match" && key != "method" && key != "format" && key != "fallback" && key != "options" && key != "act") {
      return make_error("{}: unknown key '{}' (known: match, method, format, fallback, options, act)", where, key);
    }
  }
  QuantRule r;
  r.index = index;
  if (index >= 0) {
    if (!j.contains("match") || !j["match"].is_string()) return make_error("{}: needs a \"match\" regex string", where);
    r.match = j["match"].get<std::string>();
    // The pattern itself is quoted only when short: a fuzzed one may be 60 KB.
    const std::string what =
        r.match.size() <= 64 ? fmt::format("{}: match \"{}\"", where, r.match) : where + ": match";
    LB_ASSIGN_OR_RETURN(r.regex, BoundedRegex::compile(r.match, what));
  } else if (j.contains("match")) {
    return make_error("{}: the default rule has no \"match\"", where);
  }
  if (!j.contains("method") || !j["method"].is_string()) return make_error("{}: needs a \"method\" string", where);
  const std::string method = j["method"].get<std::string>();
  bool found = false;
  for (const MethodName& m : kMethods) {
    if (method == m.name) {
      r.method = m.method;
      found = true;
    }
  }
  if (!found) return make_error("{}: unknown method \"{}\" (known: none, rtn, gptq, awq, easyquant)", where, method);
  if (j.contains("format")) {
    if (!j["format"].is_string()) return make_error("{}: \"format\" must be a string", where);
    r.format = j["format"].get<std::string>();
  } else if (r.method != QuantMethod::kNone) {
    return make_error("{}: method \"{}\" needs a \"format\"", where, method);
  }
  if (j.contains("fallback")) LB_RETURN_IF_ERROR(read_fallback(j["fallback"], where, r.fallback));
  if (j.contains("options")) LB_RETURN_IF_ERROR(read_options(j["options"], where, r.options));
  if (j.contains("act")) {
    LB_ASSIGN_OR_RETURN(r.act, parse_act_spec(j["act"], where));
  }
  LB_RETURN_IF_ERROR(check_rule(r, where));
  return r;
}

}  // namespace

const QuantRule kUnmatchedTableRule = make_unmatched_table_rule();

const char* quant_method_name(QuantMethod m) {
  for (const MethodName& n : kMethods) {
    if (n.method == m) return n.name;
  }
  return "?";
}

bool method_needs_calibration(QuantMethod m) { return m == QuantMethod::kGptq || m == QuantMethod::kAwq; }

std::string QuantRule::label() const {
  if (index >= 0) return fmt::format("rule {} (/{}/)", index, match);
  return implicit ? "the implicit fp16 rule" : "default";
}

Expected<const QuantRule*> Recipe::rule_for(const std::string& name) const {
  for (const QuantRule& r : rules) {
    LB_ASSIGN_OR_RETURN(const bool found, r.regex->search(name));
    if (found) return &r;
  }
  return is_table_name(name) ? &kUnmatchedTableRule : &default_rule;
}

Expected<bool> Recipe::needs_calibration(const ModelConfig& config) const {
  if (smooth || osp) return true;  // both read channel statistics
  if (stores_lm_head(config)) {
    LB_ASSIGN_OR_RETURN(const QuantRule* head, rule_for("lm_head"));
    if (head->options.importance) return true;
  }
  // Every layer has the same seven names up to the index, but a rule may name one layer.
  for (int i = 0; i < config.n_layers; ++i) {
    for (const char* suffix : {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}) {
      LB_ASSIGN_OR_RETURN(const QuantRule* r, rule_for(fmt::format("layers.{}.{}", i, suffix)));
      if (method_needs_calibration(r->method) || r->options.importance) return true;
      if (r->options.adaquant_steps > 0 || r->options.bias_correction) return true;
      if (r->act && r->act->is_static()) return true;
    }
  }
  return false;
}

Expected<Recipe> parse_recipe(const json& doc, const std::string& source) {
  if (!doc.is_object()) return make_error("recipe {}: must be a JSON object", source);
  for (const auto& [key, value] : doc.items()) {
    if (key != "name" && key != "description" && key != "rules" && key != "default" && key != "true_sequential" &&
        key != "rotation" && key != "smooth" && key != "osp") {
      return make_error(
          "recipe {}: unknown key '{}' (known: name, description, true_sequential, rotation, smooth, osp, rules, "
          "default)",
          source, key);
    }
  }
  Recipe recipe;
  recipe.source = source;
  recipe.json = doc;
  if (!doc.contains("name") || !doc["name"].is_string() || doc["name"].get<std::string>().empty()) {
    return make_error("recipe {}: needs a non-empty \"name\" string", source);
  }
  recipe.name = doc["name"].get<std::string>();
  if (doc.contains("description")) {
    if (!doc["description"].is_string()) return make_error("recipe {}: \"description\" must be a string", source);
    recipe.description = doc["description"].get<std::string>();
  }
  if (doc.contains("true_sequential")) {
    if (!doc["true_sequential"].is_boolean()) {
      return make_error("recipe {}: \"true_sequential\" must be true or false", source);
    }
    recipe.true_sequential = doc["true_sequential"].get<bool>();
  }
  if (doc.contains("rotation")) {
    LB_ASSIGN_OR_RETURN(recipe.rotation, rotation_spec_from_json(doc["rotation"], "recipe " + source));
  }
  if (doc.contains("smooth")) {
    LB_ASSIGN_OR_RETURN(recipe.smooth, parse_smooth_spec(doc["smooth"], "recipe " + source + ": smooth"));
  }
  if (doc.contains("osp")) {
    LB_ASSIGN_OR_RETURN(recipe.osp, parse_osp_spec(doc["osp"], "recipe " + source + ": osp"));
  }
  LB_RETURN_IF_ERROR(check_migration_groups(recipe.smooth ? &*recipe.smooth : nullptr,
                                            recipe.osp ? &*recipe.osp : nullptr, "recipe " + source));
  if (doc.contains("rules")) {
    if (!doc["rules"].is_array()) return make_error("recipe {}: \"rules\" must be an array", source);
    for (size_t i = 0; i < doc["rules"].size(); ++i) {
      LB_ASSIGN_OR_RETURN(QuantRule r, read_rule(doc["rules"][i], static_cast<int>(i), source));
      recipe.rules.push_back(std::move(r));
    }
  }
  if (!doc.contains("default")) return make_error("recipe {}: needs a \"default\" rule", source);
  LB_ASSIGN_OR_RETURN(recipe.default_rule, read_rule(doc["default"], -1, source));
  // token_embedding is quantized without calibration data; lm_head may weight RTN by
  // the importance of its input channels, the final hidden states.
  for (const char* table : {"lm_head", "token_embedding"}) {
    LB_ASSIGN_OR_RETURN(const QuantRule* matched, recipe.rule_for(table));
    const QuantRule& r = *matched;
    const bool head = std::string(table) == "lm_head";
    if (r.options.adaquant_steps > 0 || r.options.bias_correction) {
      return make_error("recipe {}: {} matches {} with adaquant_steps or bias_correction, which need a decoder linear's "
                        "calibration inputs", source, table, r.label());
    }
    if (method_needs_calibration(r.method) || (r.options.importance && !head)) {
      return make_error(
          "recipe {}: {} matches {} with method \"{}\"{}, but {} takes only {}", source, table, r.label(),
          quant_method_name(r.method), r.options.importance ? " and importance" : "", table,
          head ? "none, rtn (with or without importance) and easyquant"
               : "data-free methods (none, rtn without importance, easyquant)");
    }
  }
  return recipe;
}

Expected<Recipe> load_recipe(const std::string& name_or_path) {
  for (const BuiltinRecipe& b : builtin_recipes()) {
    if (name_or_path == b.name) return parse_recipe(json::parse(b.json), std::string("built-in ") + b.name);
  }
  auto text = read_text_file(name_or_path);
  if (!text.ok()) {
    return make_error("--recipe {}: neither a built-in recipe (see --list-recipes) nor a readable file ({})",
                      name_or_path, text.status().message());
  }
  LB_ASSIGN_OR_RETURN(const json doc, parse_untrusted_json(text.value(), "recipe " + name_or_path));
  return parse_recipe(doc, name_or_path);
}

bool Recipe::stores_lm_head(const ModelConfig& config) const {
  return !config.tied_embeddings || rotation.has_value();  // a rotation unties the head (pipeline/rotation.h)
}

Expected<WeightFormat> rule_format(const QuantRule& rule) {
  if (rule.keeps_fp32()) return make_error("{}: format fp32 is not a scaled format", rule.label());
  return WeightFormat::find(rule.format);
}

Expected<QuantRule> resolve_rule(const QuantRule& rule, const std::string& name, int64_t rows, int64_t cols) {
  auto holds = [rows, cols](const std::string& format) -> Expected<bool> {
    if (format == "fp32") return true;
    LB_ASSIGN_OR_RETURN(WeightFormat f, WeightFormat::find(format));
    return f.check_shape(rows, cols).ok();
  };
  LB_ASSIGN_OR_RETURN(bool fits, holds(rule.format));
  if (fits) return rule;
  for (const std::string& fallback : rule.fallback) {
    LB_ASSIGN_OR_RETURN(bool ok, holds(fallback));
    if (!ok) continue;
    QuantRule r = rule;
    r.fallback_from = rule.format;
    r.format = fallback;
    if (is_float_storage(fallback)) {  // stored as is: no quantizer, nothing to correct
      r.method = QuantMethod::kNone;
      r.options.importance = false;
      r.options.lorc_rank = 0;
      r.options.adaquant_steps = 0;
      r.options.bias_correction = false;
    }
    if (is_gguf_format(fallback)) r.options.adaquant_steps = 0;  // a GGUF fallback takes the method alone
    return r;
  }
  LB_ASSIGN_OR_RETURN(WeightFormat f, WeightFormat::find(rule.format));
  const Status why = f.check_shape(rows, cols);
  std::string tried;
  for (const std::string& fallback : rule.fallback) tried += (tried.empty() ? "" : ", ") + fallback;
  return make_error("{} ({}): {}{}", name, rule.label(), why.message(),
                    tried.empty() ? std::string("; give the rule a \"fallback\" format")
                                  : fmt::format("; no fallback holds it either ({})", tried));
}

Expected<double> rule_bits_per_weight(const QuantRule& rule, int64_t rows, int64_t cols) {
  if (rule.keeps_fp32()) return 32.0;
  LB_ASSIGN_OR_RETURN(WeightFormat f, rule_format(rule));
  LB_ASSIGN_OR_RETURN(double bits, f.bits_per_element(rows, cols));
  if (rule.method == QuantMethod::kEasyQuant) {
    // round(fraction · cols) outliers per row (quant/quantizers.h), 96 bits each.
    bits += 96.0 * std::round(rule.options.outlier_fraction * static_cast<double>(cols)) / static_cast<double>(cols);
  }
  const int64_t r = rule.options.lorc_rank;
  if (r > 0) {
    double factor_bits = 32.0 * static_cast<double>(r * (rows + cols));
    if (rule.options.lorc_format != "fp32") {
      LB_ASSIGN_OR_RETURN(WeightFormat lf, WeightFormat::find(rule.options.lorc_format));
      LB_ASSIGN_OR_RETURN(double u_bits, lf.bits_per_element(rows, r));
      LB_ASSIGN_OR_RETURN(double v_bits, lf.bits_per_element(r, cols));
      factor_bits = u_bits * static_cast<double>(rows * r) + v_bits * static_cast<double>(r * cols);
    }
    bits += factor_bits / static_cast<double>(rows * cols);
  }
  // Bias correction stores an FP32 bias [rows] (counted as new: a linear that already has one stores no more).
  if (rule.options.bias_correction) bits += 32.0 / static_cast<double>(cols);
  return bits;
}

Expected<RecipeSize> recipe_size(const Recipe& recipe, const ModelConfig& c) {
  double linear_bits = 0.0;
  double linear_params = 0.0;
  auto add = [&](const std::string& name, int64_t rows, int64_t cols, bool linear, double& bits) -> Status {
    LB_ASSIGN_OR_RETURN(const QuantRule* matched, recipe.rule_for(name));
    LB_ASSIGN_OR_RETURN(QuantRule rule, resolve_rule(*matched, name, rows, cols));
    LB_ASSIGN_OR_RETURN(double bpw, rule_bits_per_weight(rule, rows, cols));
    bits += bpw * static_cast<double>(rows * cols);
    if (linear) {
      linear_bits += bpw * static_cast<double>(rows * cols);
      linear_params += static_cast<double>(rows * cols);
    }
    return Status::ok_status();
  };
  double model_bits = 0.0;
  double params = 0.0;
  double act_bits = 0.0, act_inputs = 0.0;
  for (int i = 0; i < c.n_layers; ++i) {
    const std::string p = fmt::format("layers.{}.", i);
    const struct {
      const char* suffix;
      int64_t rows, cols;
    } shapes[] = {{"q_proj", c.q_dim(), c.dim},   {"k_proj", c.kv_dim(), c.dim},   {"v_proj", c.kv_dim(), c.dim},
                  {"o_proj", c.dim, c.q_dim()},   {"gate_proj", c.ffn_dim, c.dim}, {"up_proj", c.ffn_dim, c.dim},
                  {"down_proj", c.dim, c.ffn_dim}};
    for (const auto& s : shapes) {
      LB_RETURN_IF_ERROR(add(p + s.suffix, s.rows, s.cols, true, model_bits));
      params += static_cast<double>(s.rows * s.cols);
      LB_ASSIGN_OR_RETURN(const QuantRule* rule, recipe.rule_for(p + s.suffix));
      act_bits += (rule->act ? act_bits_per_element(*rule->act, s.cols) : 32.0) * static_cast<double>(s.cols);
      act_inputs += static_cast<double>(s.cols);
    }
    model_bits += 32.0 * 2 * c.dim;  // the two RMSNorm weights
    params += 2.0 * c.dim;
  }
  LB_RETURN_IF_ERROR(add("token_embedding", c.vocab_size, c.dim, false, model_bits));
  params += static_cast<double>(c.vocab_size) * c.dim;
  if (recipe.stores_lm_head(c)) {
    LB_RETURN_IF_ERROR(add("lm_head", c.vocab_size, c.dim, false, model_bits));
    params += static_cast<double>(c.vocab_size) * c.dim;
  }
  model_bits += 32.0 * c.dim;  // output norm
  params += c.dim;
  RecipeSize size;
  size.linear_bpw = linear_bits / linear_params;
  size.model_bpw = model_bits / params;
  size.model_bytes = static_cast<uint64_t>(model_bits / 8.0);
  if (act_inputs > 0.0) size.act_bits = act_bits / act_inputs;
  return size;
}

ModelConfig smollm2_135m_config() {
  ModelConfig c;
  c.n_layers = 30;
  c.dim = 576;
  c.n_heads = 9;
  c.n_kv_heads = 3;
  c.head_dim = 64;
  c.ffn_dim = 1536;
  c.vocab_size = 49152;
  c.tied_embeddings = true;
  return c;
}

}  // namespace lowbit
