#include "kvcache/kv_config_file.h"

#include <filesystem>

#include "core/mapped_file.h"
#include "io/untrusted_json.h"

namespace lowbit {

constexpr const char* kFormat = "lowbit-kv-config";
constexpr int kVersion = 1;

nlohmann::json kv_config_to_json(const KvSpec& spec, const nlohmann::json& calibration) {
  nlohmann::json j = {{"format", kFormat}, {"version", kVersion}, {"spec", spec.name}};
  if (spec.layers.size() > 1) {
    nlohmann::json layers = nlohmann::json::array();
    for (const KvLayerSpec& l : spec.layers) layers.push_back({{"k_bits", l.key.bits}, {"v_bits", l.value.bits}});
    j["layers"] = std::move(layers);
  }
  if (!spec.codebooks.empty()) j["codebooks"] = spec.codebooks.to_json();
  if (!spec.key_order.empty()) j["key_order"] = spec.key_order.to_json();
  if (!calibration.is_null()) j["calibration"] = calibration;
  return j;
}

Expected<KvSpec> kv_config_from_json(const nlohmann::json& j, const std::string& source) {
  // Every field type-checked before it is read: j.value() throws on a "format"
  // or "version" of another type (fuzz_kv_config: "version": [...] aborted).
  if (!j.is_object() || !j.contains("format") || !j["format"].is_string() || j["format"] != kFormat) {
    return make_error("{}: not a KV configuration (expected \"format\": \"{}\")", source, kFormat);
  }
  if (!j.contains("version") || !j["version"].is_number_integer() || j["version"] != kVersion) {
    return make_error("{}: KV configuration version {} (this build reads {})", source,
                      j.contains("version") ? describe_json(j["version"]) : "missing", kVersion);
  }
  if (!j.contains("spec") || !j["spec"].is_string()) return make_error("{}: missing \"spec\"", source);
  auto parsed = parse_kv_spec(j["spec"].get<std::string>());
  if (!parsed.ok()) return parsed.status().with_context(source);
  KvSpec spec = std::move(parsed).value();
  spec.source = source;
  if (j.contains("layers")) {
    const nlohmann::json& layers = j["layers"];
    if (!layers.is_array() || layers.empty()) return make_error("{}: \"layers\" must be a non-empty array", source);
    const KvLayerSpec like = spec.layers[0];
    spec.layers.clear();
    for (size_t i = 0; i < layers.size(); ++i) {
      const nlohmann::json& e = layers[i];
      // Bits are small integers; the range check keeps get<int>() from truncating 2^40.
      const auto small_int = [&](const char* k) {
        return e[k].is_number_integer() && e[k].get<int64_t>() >= 0 && e[k].get<int64_t>() <= 64;
      };
      if (!e.is_object() || !e.contains("k_bits") || !e.contains("v_bits") || !small_int("k_bits") ||
          !small_int("v_bits")) {
        return make_error("{}: layers[{}] must be {{\"k_bits\": N, \"v_bits\": M}}", source, i);
      }
      KvLayerSpec l;
      auto key = kv_tensor_with_bits(like.key, e["k_bits"].get<int>(), fmt::format("layers[{}].k_bits", i));
      if (!key.ok()) return key.status().with_context(source);
      auto value = kv_tensor_with_bits(like.value, e["v_bits"].get<int>(), fmt::format("layers[{}].v_bits", i));
      if (!value.ok()) return value.status().with_context(source);
      l.key = *key;
      l.value = *value;
      spec.layers.push_back(l);
    }
  }
  if (j.contains("codebooks")) {
    LB_ASSIGN_OR_RETURN(spec.codebooks, KvCodebooks::from_json(j["codebooks"], source));
  }
  if (j.contains("key_order")) {
    if (!spec.reorder_keys) {
      return make_error("{}: \"key_order\" is given but the spec '{}' has no -reorder", source, spec.name);
    }
    LB_ASSIGN_OR_RETURN(spec.key_order, KvChannelOrder::from_json(j["key_order"], source));
  }
  return spec;
}

Status save_kv_config(const std::string& path, const KvSpec& spec, const nlohmann::json& calibration) {
  return write_file_atomic(path, dump_json(kv_config_to_json(spec, calibration), 1) + "\n");
}

Expected<KvSpec> load_kv_config(const std::string& path) {
  LB_ASSIGN_OR_RETURN(std::string text, read_text_file(path));
  LB_ASSIGN_OR_RETURN(const nlohmann::json j, parse_untrusted_json(text, path));
  return kv_config_from_json(j, path);
}

Expected<KvSpec> resolve_kv_argument(const std::string& arg) {
  std::error_code ec;
  if (std::filesystem::is_regular_file(arg, ec)) return load_kv_config(arg);
  // A spec has neither a '/' nor a ".json" suffix: such an argument names a file,
  // and reporting it as a malformed spec would hide the missing file.
  const bool names_file = arg.find('/') != std::string::npos ||
                          (arg.size() >= 5 && arg.compare(arg.size() - 5, 5, ".json") == 0);
  if (names_file) {
    if (std::filesystem::exists(arg, ec)) return make_error("file {} is not a regular file", arg);
    return make_error("file {} not found", arg);
  }
  return parse_kv_spec(arg);
}

}  // namespace lowbit
