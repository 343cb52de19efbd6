// Hugging Face checkpoint folder -> ModelSource: config.json, model.safetensors or
// shards listed in model.safetensors.index.json, tokenizer.json (or tokenizer.model).
// HF stores q_proj/k_proj rows in the half-split RoPE layout (its conversion script
// permutes Meta's adjacent pairs), so they are kept as stored with
// rope_layout = kHalfSplit instead of being permuted back.
// A compressed-tensors checkpoint (config.json "quantization_config", io/compressed_tensors.h)
// has its quantized linears dequantized to FP32 as they are read.
#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/compressed_tensors.h"
#include "io/safetensors.h"
#include "io/untrusted_json.h"
#include "model/model_source.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// The architectures this loader maps onto ModelConfig; all share the Llama
// tensor names. qwen2 adds q/k/v biases.
struct HfArchitecture {
  const char* model_type;
  const char* class_name;
  bool qkv_bias;
  const char* sliding_window_key;      // null: no sliding window in this family
  const char* use_sliding_window_key;  // null: the window applies whenever set
};
constexpr HfArchitecture kArchitectures[] = {
    {"llama", "LlamaForCausalLM", false, nullptr, nullptr},
    {"mistral", "MistralForCausalLM", false, "sliding_window", nullptr},
    {"qwen2", "Qwen2ForCausalLM", true, "sliding_window", "use_sliding_window"},
};

std::string shape_str(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

// Typed access to config.json fields; errors name the file and key.
class ConfigReader {
 public:
  ConfigReader(const json& root, std::string path) : root_(root), path_(std::move(path)) {}

  const json* find(const char* key) const {
    auto it = root_.find(key);
    return (it == root_.end() || it->is_null()) ? nullptr : &*it;
  }
  Expected<int64_t> get_int(const char* key) const {
    const json* v = find(key);
    if (v == nullptr) return make_error("{}: missing \"{}\"", path_, key);
    if (!v->is_number_integer()) return make_error("{}: \"{}\" is {}, expected an integer", path_, key,
                                                   describe_json(*v));
    return v->get<int64_t>();
  }
  Expected<int64_t> get_int_or(const char* key, int64_t fallback) const {
    return find(key) == nullptr ? Expected<int64_t>(fallback) : get_int(key);
  }
  Expected<double> get_float_or(const char* key, double fallback) const {
    const json* v = find(key);
    if (v == nullptr) return fallback;
    if (!v->is_number()) return make_error("{}: \"{}\" is {}, expected a number", path_, key, describe_json(*v));
    return v->get<double>();
  }
  Expected<bool> get_bool_or(const char* key, bool fallback) const {
    const json* v = find(key);
    if (v == nullptr) return fallback;
    if (!v->is_boolean()) return make_error("{}: \"{}\" is {}, expected true or false", path_, key, describe_json(*v));
    return v->get<bool>();
  }
  const std::string& path() const { return path_; }

 private:
  const json& root_;
  std::string path_;
};

Expected<const HfArchitecture*> find_architecture(const ConfigReader& cfg) {
  std::string named;
  if (const json* t = cfg.find("model_type"); t != nullptr && t->is_string()) {
    named = t->get<std::string>();
    for (const auto& a : kArchitectures) {
      if (named == a.model_type) return &a;
    }
  } else if (const json* list = cfg.find("architectures"); list != nullptr && list->is_array() && !list->empty() &&
                                                          (*list)[0].is_string()) {
    named = (*list)[0].get<std::string>();
    for (const auto& a : kArchitectures) {
      if (named == a.class_name) return &a;
    }
  } else {
    return make_error("{}: neither \"model_type\" nor \"architectures\" says what the model is", cfg.path());
  }
  return make_error("{}: unsupported model type '{}' (supported: llama, mistral, qwen2)", cfg.path(), named);
}

Status parse_rope_scaling(const ConfigReader& cfg, RopeScaling* out) {
  const json* rs = cfg.find("rope_scaling");
  if (rs == nullptr) return Status::ok_status();
  if (!rs->is_object()) return make_error("{}: \"rope_scaling\" is {}, expected an object", cfg.path(),
                                          describe_json(*rs));
  const ConfigReader r(*rs, cfg.path() + " rope_scaling");
  std::string type;
  if (const json* t = r.find("rope_type"); t != nullptr && t->is_string()) {
    type = t->get<std::string>();
  } else if (const json* t2 = r.find("type"); t2 != nullptr && t2->is_string()) {
    type = t2->get<std::string>();
  }
  if (type == "default") return Status::ok_status();
  if (type != "llama3") {
    return make_error("{}: rope_scaling type '{}' is not supported (only \"llama3\")", cfg.path(), type);
  }
  out->llama3 = true;
  LB_ASSIGN_OR_RETURN(out->factor, r.get_float_or("factor", out->factor));
  LB_ASSIGN_OR_RETURN(out->low_freq_factor, r.get_float_or("low_freq_factor", out->low_freq_factor));
  LB_ASSIGN_OR_RETURN(out->high_freq_factor, r.get_float_or("high_freq_factor", out->high_freq_factor));
  LB_ASSIGN_OR_RETURN(out->original_max_position,
                      r.get_int_or("original_max_position_embeddings", out->original_max_position));
  return Status::ok_status();
}

Expected<json> read_config_json(const std::string& path) {
  LB_ASSIGN_OR_RETURN(std::string text, read_text_file(path));
  LB_ASSIGN_OR_RETURN(json root, parse_untrusted_json(text, path));
  if (!root.is_object()) return make_error("{}: not a JSON object", path);
  return root;
}

// The compressed-tensors description of the quantized linears; nullopt for a
// checkpoint of FP weights. Other quantization methods are refused by name.
Expected<std::optional<CtConfig>> parse_quantization(const json& root, const std::string& path) {
  auto it = root.find("quantization_config");
  if (it == root.end() || it->is_null()) return std::optional<CtConfig>();
  LB_ASSIGN_OR_RETURN(CtConfig c, parse_ct_config(*it, path + ": quantization_config"));
  return std::optional<CtConfig>(std::move(c));
}

Expected<ModelConfig> parse_config(const json& root, const std::string& path) {
  const ConfigReader cfg(root, path);
  LB_ASSIGN_OR_RETURN(const HfArchitecture* arch, find_architecture(cfg));

  if (const json* act = cfg.find("hidden_act"); act != nullptr && *act != "silu") {
    return make_error("{}: hidden_act {} is not supported (SwiGLU with silu only)", path, describe_json(*act));
  }
  for (const char* key : {"attention_bias", "mlp_bias"}) {
    LB_ASSIGN_OR_RETURN(bool set, cfg.get_bool_or(key, false));
    if (set) return make_error("{}: \"{}\": true is not supported", path, key);
  }

  ModelConfig c;
  c.architecture = arch->model_type;
  c.qkv_bias = arch->qkv_bias;
  c.rope_layout = RopeLayout::kHalfSplit;
  LB_ASSIGN_OR_RETURN(int64_t dim, cfg.get_int("hidden_size"));
  LB_ASSIGN_OR_RETURN(int64_t ffn, cfg.get_int("intermediate_size"));
  LB_ASSIGN_OR_RETURN(int64_t layers, cfg.get_int("num_hidden_layers"));
  LB_ASSIGN_OR_RETURN(int64_t heads, cfg.get_int("num_attention_heads"));
  LB_ASSIGN_OR_RETURN(int64_t kv_heads, cfg.get_int_or("num_key_value_heads", heads));
  LB_ASSIGN_OR_RETURN(int64_t vocab, cfg.get_int("vocab_size"));
  if (heads <= 0) return make_error("{}: num_attention_heads {} must be positive", path, heads);
  LB_ASSIGN_OR_RETURN(int64_t head_dim, cfg.get_int_or("head_dim", dim / heads));
  LB_ASSIGN_OR_RETURN(int64_t max_pos, cfg.get_int_or("max_position_embeddings", c.max_seq_len));
  LB_ASSIGN_OR_RETURN(double eps, cfg.get_float_or("rms_norm_eps", 1e-6));  // HF's default
  LB_ASSIGN_OR_RETURN(c.rope_theta, cfg.get_float_or("rope_theta", 10000.0));
  LB_ASSIGN_OR_RETURN(c.tied_embeddings, cfg.get_bool_or("tie_word_embeddings", false));
  LB_RETURN_IF_ERROR(parse_rope_scaling(cfg, &c.rope_scaling));
  // Sliding-window attention equals full attention up to the window, so the
  // window caps the context instead of being implemented.
  bool windowed = arch->sliding_window_key != nullptr;
  if (windowed && arch->use_sliding_window_key != nullptr) {
    LB_ASSIGN_OR_RETURN(windowed, cfg.get_bool_or(arch->use_sliding_window_key, false));
  }
  if (windowed) {
    LB_ASSIGN_OR_RETURN(int64_t window, cfg.get_int_or(arch->sliding_window_key, 0));
    if (window > 0) max_pos = std::min(max_pos, window);
  }
  const std::pair<const char*, int64_t> sizes[] = {
      {"hidden_size", dim},         {"intermediate_size", ffn}, {"num_hidden_layers", layers},
      {"num_attention_heads", heads},
      {"num_key_value_heads", kv_heads}, {"vocab_size", vocab}, {"head_dim", head_dim},
      {"max_position_embeddings", max_pos}};
  for (const auto& [key, v] : sizes) {
    if (v <= 0 || v > (int64_t{1} << 30)) return make_error("{}: \"{}\" = {} is out of range", path, key, v);
  }
  c.dim = static_cast<int>(dim);
  c.ffn_dim = static_cast<int>(ffn);
  c.n_layers = static_cast<int>(layers);
  c.n_heads = static_cast<int>(heads);
  c.n_kv_heads = static_cast<int>(kv_heads);
  c.head_dim = static_cast<int>(head_dim);
  c.vocab_size = static_cast<int>(vocab);
  c.max_seq_len = static_cast<int>(max_pos);
  c.norm_eps = static_cast<float>(eps);
  LB_RETURN_IF_ERROR(c.validate(path));
  return c;
}

// All tensors of a checkpoint, over one file or several shards.
class TensorSet {
 public:
  static Expected<TensorSet> open(const fs::path& folder) {
    TensorSet set;
    set.folder_ = folder.string();
    const fs::path single = folder / "model.safetensors";
    const fs::path index = folder / "model.safetensors.index.json";
    if (fs::exists(single)) {
      LB_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::open(single.string()));
      set.files_.push_back(std::make_unique<SafetensorsFile>(std::move(f)));
      for (const auto& t : set.files_[0]->tensors()) set.location_[t.name] = 0;
      return set;
    }
    if (!fs::exists(index)) {
      return make_error("{}: no model.safetensors or model.safetensors.index.json (only safetensors is supported)",
                        folder.string());
    }
    LB_ASSIGN_OR_RETURN(std::string text, read_text_file(index.string()));
    LB_ASSIGN_OR_RETURN(const json root, parse_untrusted_json(text, index.string()));
    if (!root.is_object() || !root.contains("weight_map") || !root["weight_map"].is_object()) {
      return make_error("{}: not a JSON object with a \"weight_map\" object", index.string());
    }
    std::map<std::string, size_t> file_ids;
    for (const auto& [name, file] : root["weight_map"].items()) {
      if (!file.is_string()) return make_error("{}: weight_map entry '{}' is not a file name", index.string(), name);
      const std::string shard = file.get<std::string>();
      if (shard.empty() || shard.find('/') != std::string::npos || shard.find("..") != std::string::npos) {
        return make_error("{}: weight_map entry '{}' names '{}', not a file in the folder", index.string(), name, shard);
      }
      auto [it, inserted] = file_ids.emplace(shard, set.files_.size());
      if (inserted) {
        LB_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::open((folder / shard).string()));
        set.files_.push_back(std::make_unique<SafetensorsFile>(std::move(f)));
      }
      set.location_[name] = it->second;
    }
    return set;
  }

  // The tensor or null; errors when the index names a shard that lacks it.
  Expected<const SafetensorsTensor*> find(const std::string& name) const {
    auto it = location_.find(name);
    if (it == location_.end()) return static_cast<const SafetensorsTensor*>(nullptr);
    const SafetensorsTensor* t = files_[it->second]->find(name);
    if (t == nullptr) {
      return make_error("{}: tensor '{}' is listed in the index but missing from the file", files_[it->second]->path(),
                        name);
    }
    return t;
  }

  // Loads a tensor as FP32, requiring `shape`.
  Expected<std::vector<float>> load(const std::string& name, const std::vector<int64_t>& shape) const {
    LB_ASSIGN_OR_RETURN(const SafetensorsTensor* t, find(name));
    if (t == nullptr) return make_error("{}: tensor '{}' not found in the checkpoint", folder_, name);
    const SafetensorsFile& file = *files_[location_.at(name)];
    if (t->shape != shape) {
      return make_error("{}: tensor '{}' has shape {} but config.json implies {}", file.path(), name,
                        shape_str(t->shape), shape_str(shape));
    }
    return file.to_f32(*t);
  }

  Expected<Matrix> load_matrix(const std::string& prefix, int64_t rows, int64_t cols, bool bias) const {
    Matrix m;
    m.rows = rows;
    m.cols = cols;
    LB_ASSIGN_OR_RETURN(m.data, load(prefix + ".weight", {rows, cols}));
    if (bias) {
      LB_ASSIGN_OR_RETURN(m.bias, load(prefix + ".bias", {rows}));
    }
    return m;
  }

  // A linear layer's weight: dense P.weight, or dequantized from the tensors
  // compressed-tensors stores under P when `ct` gives P a scheme.
  Expected<Matrix> load_linear(const std::string& prefix, int64_t rows, int64_t cols, bool bias,
                               const CtConfig* ct) const {
    const CtScheme* scheme = nullptr;
    if (ct != nullptr) {
      LB_ASSIGN_OR_RETURN(scheme, ct->scheme_for(prefix));
    }
    if (scheme == nullptr) return load_matrix(prefix, rows, cols, bias);
    CtModuleTensors t;
    std::string shard;
    const std::pair<const char*, const SafetensorsTensor**> parts[] = {
        {"weight", &t.weight},
        {"weight_packed", &t.weight_packed},
        {"weight_scale", &t.weight_scale},
        {"weight_zero_point", &t.weight_zero_point},
        {"weight_shape", &t.weight_shape},
        {"weight_global_scale", &t.weight_global_scale}};
    for (const auto& [suffix, slot] : parts) {
      LB_ASSIGN_OR_RETURN(*slot, find(prefix + "." + suffix));
      if (*slot != nullptr && shard.empty()) shard = files_[location_.at(prefix + "." + suffix)]->path();
    }
    Matrix m;
    m.rows = rows;
    m.cols = cols;
    const std::string where = fmt::format("{}: {} ({} {})", shard.empty() ? folder_ : shard, prefix, scheme->format,
                                          ct_strategy_name(scheme->weights.strategy));
    LB_ASSIGN_OR_RETURN(m.data, ct_dequantize(*scheme, t, rows, cols, where));
    if (bias) {
      LB_ASSIGN_OR_RETURN(m.bias, load(prefix + ".bias", {rows}));
    }
    return m;
  }

  FileSummary summary() const {
    FileSummary s;
    s.format = "huggingface";
    s.path = folder_;
    for (const auto& f : files_) {
      s.file_bytes += f->file_size();
      for (const auto& t : f->tensors()) {
        s.tensors.push_back({t.name, safetensors_dtype_info(t.dtype).short_name, t.shape, t.n_bytes});
      }
    }
    return s;
  }

 private:
  std::string folder_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> location_;  // tensor name -> index into files_
};

Expected<std::unique_ptr<Tokenizer>> load_folder_tokenizer(const fs::path& folder) {
  const fs::path json_path = folder / "tokenizer.json";
  const fs::path spm_path = folder / "tokenizer.model";
  if (fs::exists(json_path)) return load_hf_tokenizer_json(json_path.string());
  if (fs::exists(spm_path)) return load_sentencepiece_model(spm_path.string());
  return make_error("{}: no tokenizer.json or tokenizer.model", folder.string());
}

class HfSource : public ModelSource {
 public:
  HfSource(std::string folder, TensorSet set, ModelConfig config, std::optional<CtConfig> ct,
           const LoadOptions& options)
      : ModelSource(std::move(config), set.summary(), options),
        folder_(std::move(folder)),
        set_(std::move(set)),
        ct_(std::move(ct)) {}

 protected:
  Expected<std::vector<float>> read_token_embedding() const override {
    return set_.load("model.embed_tokens.weight", {config().vocab_size, config().dim});
  }

  Expected<LayerWeights> read_layer(int i) const override {
    const ModelConfig& c = config();
    const int64_t dim = c.dim, q = c.q_dim(), kv = c.kv_dim(), ffn = c.ffn_dim;
    const std::string p = fmt::format("model.layers.{}.", i);
    LayerWeights l;
    LB_ASSIGN_OR_RETURN(l.attn_norm, set_.load(p + "input_layernorm.weight", {dim}));
    LB_ASSIGN_OR_RETURN(l.q_proj, set_.load_linear(p + "self_attn.q_proj", q, dim, c.qkv_bias, ct()));
    LB_ASSIGN_OR_RETURN(l.k_proj, set_.load_linear(p + "self_attn.k_proj", kv, dim, c.qkv_bias, ct()));
    LB_ASSIGN_OR_RETURN(l.v_proj, set_.load_linear(p + "self_attn.v_proj", kv, dim, c.qkv_bias, ct()));
    LB_ASSIGN_OR_RETURN(l.o_proj, set_.load_linear(p + "self_attn.o_proj", dim, q, false, ct()));
    LB_ASSIGN_OR_RETURN(l.ffn_norm, set_.load(p + "post_attention_layernorm.weight", {dim}));
    LB_ASSIGN_OR_RETURN(l.gate_proj, set_.load_linear(p + "mlp.gate_proj", ffn, dim, false, ct()));
    LB_ASSIGN_OR_RETURN(l.up_proj, set_.load_linear(p + "mlp.up_proj", ffn, dim, false, ct()));
    LB_ASSIGN_OR_RETURN(l.down_proj, set_.load_linear(p + "mlp.down_proj", dim, ffn, false, ct()));
    return l;
  }

  Expected<std::vector<float>> read_output_norm() const override {
    return set_.load("model.norm.weight", {config().dim});
  }

  // Tied checkpoints may still store lm_head.weight (a copy); it is not read then.
  Expected<Matrix> read_lm_head() const override {
    return set_.load_linear("lm_head", config().vocab_size, config().dim, false, ct());
  }

  Expected<std::vector<float>> read_rope_freq_factors() const override { return std::vector<float>(); }

  Expected<std::unique_ptr<Tokenizer>> read_tokenizer() const override { return load_folder_tokenizer(folder_); }

 private:
  const CtConfig* ct() const { return ct_ ? &*ct_ : nullptr; }

  fs::path folder_;
  TensorSet set_;  // keeps every shard mapped; tensors are converted on demand
  std::optional<CtConfig> ct_;  // quantized linears (compressed-tensors), if any
};

}  // namespace

Expected<std::unique_ptr<ModelSource>> open_hf_source(const std::string& folder, const LoadOptions& options) {
  const fs::path dir(folder);
  if (!fs::is_directory(dir)) return make_error("{}: not a folder (a Hugging Face checkpoint is a folder)", folder);
  const std::string config_path = (dir / "config.json").string();
  LB_ASSIGN_OR_RETURN(json root, read_config_json(config_path));
  LB_ASSIGN_OR_RETURN(ModelConfig config, parse_config(root, config_path));
  LB_ASSIGN_OR_RETURN(std::optional<CtConfig> ct, parse_quantization(root, config_path));
  LB_ASSIGN_OR_RETURN(TensorSet set, TensorSet::open(dir));
  return std::unique_ptr<ModelSource>(
      std::make_unique<HfSource>(folder, std::move(set), std::move(config), std::move(ct), options));
}

}  // namespace lowbit
