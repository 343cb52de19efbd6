#include "pipeline/export_gguf_metadata.h"

#include <cmath>
#include <filesystem>
#include <optional>

namespace lowbit {
namespace {

constexpr GgufArchitecture kArchitectures[] = {
    {"llama", "llama", RopeLayout::kAdjacentPairs, true},
    {"mistral", "llama", RopeLayout::kAdjacentPairs, true},  // llama.cpp runs Mistral as llama
    {"qwen2", "qwen2", RopeLayout::kHalfSplit, false},
};

// Keys the exporter sets itself, never copied from a source.
bool is_recomputed(const std::string& key) {
  return key == "general.architecture" || key == "general.alignment" || key == "general.file_type" ||
         key == "general.quantization_version" || key == "general.quantized_by";
}

std::string model_name(const ExportSource& source) {
  if (source.kind() == ExportSourceKind::kGguf) {
    const GgufValue* name = source.gguf_header()->find("general.name");
    if (name != nullptr && name->type == GgufValueType::STRING) return name->as_string();
  }
  const std::filesystem::path p(source.path());
  return (p.has_stem() ? p.stem() : p.parent_path().filename()).string();
}

}  // namespace

Expected<const GgufArchitecture*> find_gguf_architecture(const ModelConfig& config, const std::string& source) {
  for (const GgufArchitecture& a : kArchitectures) {
    if (config.architecture == a.lowbit) return &a;
  }
  return make_error("{}: architecture '{}' has no llama.cpp counterpart here (llama, mistral, qwen2)", source,
                    config.architecture);
}

void set_gguf_model_metadata(GgufWriter& w, const ExportSource& source, const GgufArchitecture& arch,
                             const GgufFileFacts& facts) {
  const ModelConfig& c = source.config();
  w.set_string("general.architecture", arch.gguf);
  w.set_string("general.name", model_name(source));
  w.set_u32("general.alignment", 32);
  w.set_u32("general.file_type", static_cast<uint32_t>(facts.llama_ftype));
  if (facts.quantized) w.set_u32("general.quantization_version", 2);
  w.set_string("general.quantized_by", "lowbit");
  if (source.kind() == ExportSourceKind::kGguf) {
    for (const auto& [key, value] : source.gguf_header()->metadata()) {
      if (key.starts_with("general.") && !is_recomputed(key) && key != "general.name") w.set(key, value);
    }
  }
  const std::string p = std::string(arch.gguf) + ".";
  w.set_u32(p + "vocab_size", static_cast<uint32_t>(c.vocab_size));
  w.set_u32(p + "context_length", static_cast<uint32_t>(c.max_seq_len));
  w.set_u32(p + "embedding_length", static_cast<uint32_t>(c.dim));
  w.set_u32(p + "block_count", static_cast<uint32_t>(c.n_layers));
  w.set_u32(p + "feed_forward_length", static_cast<uint32_t>(c.ffn_dim));
  w.set_u32(p + "attention.head_count", static_cast<uint32_t>(c.n_heads));
  w.set_u32(p + "attention.head_count_kv", static_cast<uint32_t>(c.n_kv_heads));
  w.set_f32(p + "attention.layer_norm_rms_epsilon", c.norm_eps);
  w.set_f32(p + "rope.freq_base", static_cast<float>(c.rope_theta));
  w.set_u32(p + "rope.dimension_count", static_cast<uint32_t>(c.head_dim));
  if (c.head_dim * c.n_heads != c.dim) {
    w.set_u32(p + "attention.key_length", static_cast<uint32_t>(c.head_dim));
    w.set_u32(p + "attention.value_length", static_cast<uint32_t>(c.head_dim));
  }
  if (source.kind() == ExportSourceKind::kGguf) {
    const GgufValue* src_arch = source.gguf_header()->find("general.architecture");
    const std::string from = (src_arch != nullptr && src_arch->type == GgufValueType::STRING ? src_arch->as_string()
                                                                                              : std::string(arch.gguf)) +
                             ".rope.scaling.";
    for (const auto& [key, value] : source.gguf_header()->metadata()) {
      if (key.starts_with(from)) w.set(p + "rope.scaling." + key.substr(from.size()), value);
    }
  }
}

Status set_gguf_tokenizer_metadata(GgufWriter& w, const ExportSource& source, const std::string& tokenizer_path) {
  std::optional<GgufFile> given;
  const GgufFile* from = source.gguf_header();
  if (!tokenizer_path.empty()) {
    auto g = GgufFile::open(tokenizer_path);
    if (!g.ok()) return g.status().with_context("--tokenizer (a GGUF file whose tokenizer.* keys are copied)");
    given.emplace(std::move(g).value());
    from = &*given;
  }
  const std::string where = tokenizer_path.empty() ? source.path() : tokenizer_path;
  if (from == nullptr || from->find("tokenizer.ggml.model") == nullptr) {
    if (!tokenizer_path.empty()) return make_error("--tokenizer {}: has no tokenizer.ggml.* keys", tokenizer_path);
    return make_error(
        "{}: no GGUF tokenizer to carry (this exporter copies tokenizer.* keys from GGUF metadata and does not "
        "convert Hugging Face or llama2.c tokenizers); pass --tokenizer FILE.gguf with the same vocabulary",
        source.path());
  }
  LB_ASSIGN_OR_RETURN(std::vector<std::string> tokens, from->get_string_array("tokenizer.ggml.tokens"));
  if (tokens.size() != static_cast<size_t>(source.config().vocab_size)) {
    return make_error("{}: tokenizer.ggml.tokens has {} tokens, the model's vocabulary {}", where, tokens.size(),
                      source.config().vocab_size);
  }
  for (const auto& [key, value] : from->metadata()) {
    if (key.starts_with("tokenizer.")) w.set(key, value);
  }
  return Status::ok_status();
}

std::vector<float> llama3_rope_freq_factors(const ModelConfig& c) {
  constexpr double kPi = 3.14159265358979323846;
  const RopeScaling& s = c.rope_scaling;
  const double low_wavelen = s.original_max_position / s.low_freq_factor;
  const double high_wavelen = s.original_max_position / s.high_freq_factor;
  std::vector<float> factors(static_cast<size_t>(c.head_dim / 2));
  for (size_t i = 0; i < factors.size(); ++i) {
    const double freq = std::pow(c.rope_theta, -2.0 * static_cast<double>(i) / c.head_dim);
    const double wavelen = 2.0 * kPi / freq;
    double factor = 1.0;
    if (wavelen > low_wavelen) {
      factor = s.factor;
    } else if (wavelen >= high_wavelen) {
      const double smooth = (s.original_max_position / wavelen - s.low_freq_factor) /
                            (s.high_freq_factor - s.low_freq_factor);
      factor = 1.0 / ((1.0 - smooth) / s.factor + smooth);
    }
    factors[i] = static_cast<float>(factor);
  }
  return factors;
}

}  // namespace lowbit
