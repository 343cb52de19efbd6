#include "model/model_source.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "io/gguf.h"
#include "io/lowbit_container.h"

namespace lowbit {
namespace {

Status check_vector(const std::vector<float>& v, int64_t expected, const std::string& tensor,
                    const std::string& source) {
  if (v.size() != static_cast<size_t>(expected)) {
    return make_error("{}: tensor '{}' has {} elements, expected {}", source, tensor, v.size(), expected);
  }
  return check_finite_weights(v, tensor, source);
}

// A bias is required when `bias` and allowed (with the right size) otherwise.
Status check_matrix(const Matrix& m, int64_t rows, int64_t cols, bool bias, const std::string& tensor,
                    const std::string& source) {
  if (m.rows != rows || m.cols != cols || m.data.size() != static_cast<size_t>(rows * cols)) {
    return make_error("{}: tensor '{}' has shape [{}, {}], expected [{}, {}]", source, tensor, m.rows, m.cols, rows,
                      cols);
  }
  LB_RETURN_IF_ERROR(check_finite_weights(m.data, tensor, source));
  if (bias || !m.bias.empty()) LB_RETURN_IF_ERROR(check_vector(m.bias, rows, tensor + ".bias", source));
  return Status::ok_status();
}

}  // namespace

Status validate_layer_weights(const LayerWeights& l, const ModelConfig& c, int index, const std::string& source) {
  const std::string p = fmt::format("layers.{}.", index);
  LB_RETURN_IF_ERROR(check_vector(l.attn_norm, c.dim, p + "attn_norm", source));
  if (!l.attn_norm_bias.empty()) LB_RETURN_IF_ERROR(check_vector(l.attn_norm_bias, c.dim, p + "attn_norm_bias", source));
  if (!l.ffn_norm_bias.empty()) LB_RETURN_IF_ERROR(check_vector(l.ffn_norm_bias, c.dim, p + "ffn_norm_bias", source));
  LB_RETURN_IF_ERROR(check_matrix(l.q_proj, c.q_dim(), c.dim, c.qkv_bias, p + "q_proj", source));
  LB_RETURN_IF_ERROR(check_matrix(l.k_proj, c.kv_dim(), c.dim, c.qkv_bias, p + "k_proj", source));
  LB_RETURN_IF_ERROR(check_matrix(l.v_proj, c.kv_dim(), c.dim, c.qkv_bias, p + "v_proj", source));
  LB_RETURN_IF_ERROR(check_matrix(l.o_proj, c.dim, c.q_dim(), false, p + "o_proj", source));
  LB_RETURN_IF_ERROR(check_vector(l.ffn_norm, c.dim, p + "ffn_norm", source));
  LB_RETURN_IF_ERROR(check_matrix(l.gate_proj, c.ffn_dim, c.dim, false, p + "gate_proj", source));
  LB_RETURN_IF_ERROR(check_matrix(l.up_proj, c.ffn_dim, c.dim, false, p + "up_proj", source));
  LB_RETURN_IF_ERROR(check_matrix(l.down_proj, c.dim, c.ffn_dim, false, p + "down_proj", source));
  return Status::ok_status();
}

ModelSource::ModelSource(ModelConfig config, FileSummary summary, LoadOptions options)
    : config_(std::move(config)), summary_(std::move(summary)), options_(std::move(options)) {}

Expected<std::vector<float>> ModelSource::token_embedding() const {
  LB_ASSIGN_OR_RETURN(std::vector<float> v, read_token_embedding());
  LB_RETURN_IF_ERROR(
      check_vector(v, static_cast<int64_t>(config_.vocab_size) * config_.dim, "token_embedding", path()));
  return v;
}

Expected<LayerWeights> ModelSource::layer(int index) const {
  if (index < 0 || index >= config_.n_layers) {
    return make_error("{}: layer {} is out of range [0, {})", path(), index, config_.n_layers);
  }
  LB_ASSIGN_OR_RETURN(LayerWeights l, read_layer(index));
  LB_RETURN_IF_ERROR(validate_layer_weights(l, config_, index, path()));
  return l;
}

Expected<std::vector<float>> ModelSource::output_norm() const {
  LB_ASSIGN_OR_RETURN(std::vector<float> v, read_output_norm());
  LB_RETURN_IF_ERROR(check_vector(v, config_.dim, "output_norm", path()));
  return v;
}

Expected<Matrix> ModelSource::lm_head() const {
  if (config_.tied_embeddings) return Matrix();
  LB_ASSIGN_OR_RETURN(Matrix m, read_lm_head());
  LB_RETURN_IF_ERROR(check_matrix(m, config_.vocab_size, config_.dim, false, "lm_head", path()));
  return m;
}

Expected<std::vector<float>> ModelSource::rope_freq_factors() const {
  LB_ASSIGN_OR_RETURN(std::vector<float> v, read_rope_freq_factors());
  if (!v.empty()) LB_RETURN_IF_ERROR(check_vector(v, config_.head_dim / 2, "rope_freqs", path()));
  return v;
}

Expected<std::unique_ptr<Tokenizer>> ModelSource::tokenizer() const {
  const std::string& tp = options_.tokenizer_path;
  if (tp.empty()) return read_tokenizer();
  if (tp.ends_with(".json")) return load_hf_tokenizer_json(tp);
  if (tp.ends_with(".model")) return load_sentencepiece_model(tp);
  return load_llama2c_tokenizer(tp, config_.vocab_size);
}

Expected<std::map<std::string, QuantizedWeight>> ModelSource::quantized_linears() const {
  return std::map<std::string, QuantizedWeight>();
}

Expected<std::map<std::string, ActQuantAttachment>> ModelSource::act_quantizers() const {
  return std::map<std::string, ActQuantAttachment>();
}

Expected<std::optional<RotationSpec>> ModelSource::rotation() const { return std::optional<RotationSpec>(); }

Expected<std::map<std::string, LinearGgmlStorage>> ModelSource::linear_ggml_storage() const {
  return std::map<std::string, LinearGgmlStorage>();
}

bool ModelSource::has_stored_tensors() const { return false; }

Expected<std::optional<QuantizedWeight>> ModelSource::stored_tensor(const std::string&,
                                                                    const std::vector<int64_t>&) const {
  return std::optional<QuantizedWeight>();
}

Expected<std::unique_ptr<ModelSource>> open_model_source(const std::string& path, const LoadOptions& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) return make_error("{}: no such file or folder", path);
  if (fs::is_directory(path, ec)) return open_hf_source(path, options);
  char magic[4] = {};
  std::ifstream in(path, std::ios::binary);
  in.read(magic, 4);
  if (in.gcount() == 4 && std::memcmp(magic, "GGUF", 4) == 0) {
    LB_ASSIGN_OR_RETURN(GgufFile gguf, GgufFile::open(path));
    if (is_lowbit_container(gguf)) return open_lowbit_source(path, options);
    return open_gguf_source(path, options);
  }
  const fs::path extension = fs::path(path).extension();
  if (extension == ".bin") return open_llama2c_source(path, options);
  if (extension == ".gguf") return make_error("{}: not a GGUF file (bad magic)", path);
  return make_error("{}: unrecognised model (expected a .gguf file, a Hugging Face folder or a llama2.c .bin)", path);
}

}  // namespace lowbit
