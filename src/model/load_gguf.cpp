// GGUF (llama.cpp) → ModelSource. Tensor names follow llama.cpp's llama
// architecture (token_embd, blk.N.attn_q, ...). llama.cpp's converter un-permutes
// HF q/k rows into adjacent RoPE pairs for llama/mistral; qwen2 keeps NEOX
// (half-split) pairs.
#include <cmath>
#include <limits>

#include "io/gguf.h"
#include "model/model_source.h"

namespace lowbit {
namespace {

struct GgufModelReader {
  const GgufFile& gguf;

  Expected<std::vector<float>> vector(const std::string& name, int64_t n) const {
    const GgufTensorInfo* info = gguf.find_tensor(name);
    if (info == nullptr) return make_error("{}: missing tensor '{}'", gguf.path(), name);
    if (info->n_elements() != n || info->dims.size() != 1) {
      return make_error("{}: tensor '{}' has {} elements in {} dims, expected [{}]", gguf.path(), name,
                        info->n_elements(), info->dims.size(), n);
    }
    return gguf.dequantize(*info);
  }

  // A GGUF matrix has ne0 = in features (fastest), ne1 = out features.
  Expected<Matrix> matrix(const std::string& name, int64_t rows, int64_t cols, bool with_bias) const {
    const GgufTensorInfo* info = gguf.find_tensor(name + ".weight");
    if (info == nullptr) return make_error("{}: missing tensor '{}.weight'", gguf.path(), name);
    if (info->dims.size() != 2 || info->dims[0] != cols || info->dims[1] != rows) {
      std::string shape;
      for (int64_t d : info->dims) shape += (shape.empty() ? "" : ", ") + std::to_string(d);
      return make_error("{}: tensor '{}.weight' has ne [{}], expected [{}, {}]", gguf.path(), name,
                        shape, cols, rows);
    }
    Matrix m;
    m.rows = rows;
    m.cols = cols;
    LB_ASSIGN_OR_RETURN(m.data, gguf.dequantize(*info));
    if (with_bias) {
      LB_ASSIGN_OR_RETURN(m.bias, vector(name + ".bias", rows));
    }
    return m;
  }
};

Expected<ModelConfig> read_config(const GgufFile& gguf, const std::string& arch) {
  ModelConfig c;
  c.architecture = arch;
  const std::string p = arch + ".";
  LB_ASSIGN_OR_RETURN(int64_t n_layers, gguf.get_int(p + "block_count"));
  LB_ASSIGN_OR_RETURN(int64_t dim, gguf.get_int(p + "embedding_length"));
  LB_ASSIGN_OR_RETURN(int64_t n_heads, gguf.get_int(p + "attention.head_count"));
  LB_ASSIGN_OR_RETURN(int64_t ffn, gguf.get_int(p + "feed_forward_length"));
  const int64_t n_kv_heads = gguf.get_int_or(p + "attention.head_count_kv", n_heads);
  const int64_t head_dim = n_heads > 0 ? gguf.get_int_or(p + "attention.key_length", dim / n_heads) : 0;
  const int64_t max_seq_len = gguf.get_int_or(p + "context_length", 2048);
  // Each value must fit the int it fills; ModelConfig::validate then checks its range.
  const struct {
    const char* key;
    int64_t value;
    int* field;
  } ints[] = {{"block_count", n_layers, &c.n_layers},
              {"embedding_length", dim, &c.dim},
              {"attention.head_count", n_heads, &c.n_heads},
              {"attention.head_count_kv", n_kv_heads, &c.n_kv_heads},
              {"feed_forward_length", ffn, &c.ffn_dim},
              {"attention.key_length", head_dim, &c.head_dim},
              {"context_length", max_seq_len, &c.max_seq_len}};
  for (const auto& i : ints) {
    if (i.value < std::numeric_limits<int>::min() || i.value > std::numeric_limits<int>::max()) {
      return make_error("{}: metadata '{}{}' = {} does not fit in 32 bits", gguf.path(), p, i.key, i.value);
    }
    *i.field = static_cast<int>(i.value);
  }
  c.norm_eps = static_cast<float>(gguf.get_float_or(p + "attention.layer_norm_rms_epsilon", 1e-5));
  c.rope_theta = gguf.get_float_or(p + "rope.freq_base", 10000.0);
  c.rope_layout = arch == "qwen2" ? RopeLayout::kHalfSplit : RopeLayout::kAdjacentPairs;
  c.qkv_bias = gguf.find_tensor("blk.0.attn_q.bias") != nullptr;
  c.tied_embeddings = gguf.find_tensor("output.weight") == nullptr;
  const GgufTensorInfo* embd = gguf.find_tensor("token_embd.weight");
  if (embd == nullptr) return make_error("{}: missing tensor 'token_embd.weight'", gguf.path());
  if (embd->dims.size() != 2) return make_error("{}: tensor 'token_embd.weight' must be 2-D", gguf.path());
  if (embd->dims[1] > ModelConfig::kMaxVocab) {
    return make_error("{}: tensor 'token_embd.weight' has {} rows, above lowbit's vocabulary limit of {}",
                      gguf.path(), embd->dims[1], ModelConfig::kMaxVocab);
  }
  c.vocab_size = static_cast<int>(embd->dims[1]);
  const int64_t rope_dims = gguf.get_int_or(p + "rope.dimension_count", c.head_dim);
  if (rope_dims != c.head_dim) {
    return make_error("{}: partial RoPE ({} of {} head dims) is not supported", gguf.path(), rope_dims,
                      c.head_dim);
  }
  return c;
}

FileSummary summarize(const GgufFile& gguf) {
  FileSummary s;
  s.format = "gguf";
  s.path = gguf.path();
  s.file_bytes = gguf.file_size();
  for (const GgufTensorInfo& t : gguf.tensors()) {
    StoredTensor st;
    st.name = t.name;
    st.dtype = ggml_type_name(t.type_id);
    st.shape.assign(t.dims.rbegin(), t.dims.rend());
    st.n_bytes = t.n_bytes;
    s.tensors.push_back(std::move(st));
  }
  return s;
}

class GgufSource : public ModelSource {
 public:
  GgufSource(GgufFile gguf, ModelConfig config, const LoadOptions& options)
      : ModelSource(std::move(config), summarize(gguf), options), gguf_(std::move(gguf)) {}

 protected:
  Expected<std::vector<float>> read_token_embedding() const override {
    LB_ASSIGN_OR_RETURN(Matrix embedding, reader().matrix("token_embd", config().vocab_size, config().dim, false));
    return std::move(embedding.data);
  }

  Expected<LayerWeights> read_layer(int i) const override {
    const ModelConfig& c = config();
    const GgufModelReader r = reader();
    const std::string b = "blk." + std::to_string(i) + ".";
    LayerWeights l;
    LB_ASSIGN_OR_RETURN(l.attn_norm, r.vector(b + "attn_norm.weight", c.dim));
    LB_ASSIGN_OR_RETURN(l.q_proj, r.matrix(b + "attn_q", c.q_dim(), c.dim, c.qkv_bias));
    LB_ASSIGN_OR_RETURN(l.k_proj, r.matrix(b + "attn_k", c.kv_dim(), c.dim, c.qkv_bias));
    LB_ASSIGN_OR_RETURN(l.v_proj, r.matrix(b + "attn_v", c.kv_dim(), c.dim, c.qkv_bias));
    LB_ASSIGN_OR_RETURN(l.o_proj, r.matrix(b + "attn_output", c.dim, c.q_dim(), false));
    LB_ASSIGN_OR_RETURN(l.ffn_norm, r.vector(b + "ffn_norm.weight", c.dim));
    LB_ASSIGN_OR_RETURN(l.gate_proj, r.matrix(b + "ffn_gate", c.ffn_dim, c.dim, false));
    LB_ASSIGN_OR_RETURN(l.up_proj, r.matrix(b + "ffn_up", c.ffn_dim, c.dim, false));
    LB_ASSIGN_OR_RETURN(l.down_proj, r.matrix(b + "ffn_down", c.dim, c.ffn_dim, false));
    return l;
  }

  Expected<std::vector<float>> read_output_norm() const override {
    return reader().vector("output_norm.weight", config().dim);
  }

  Expected<Matrix> read_lm_head() const override {
    return reader().matrix("output", config().vocab_size, config().dim, false);
  }

  Expected<std::vector<float>> read_rope_freq_factors() const override {
    if (gguf_.find_tensor("rope_freqs.weight") == nullptr) return std::vector<float>();
    return reader().vector("rope_freqs.weight", config().head_dim / 2);
  }

  Expected<std::unique_ptr<Tokenizer>> read_tokenizer() const override { return load_gguf_tokenizer(gguf_); }

 public:
  Expected<std::map<std::string, LinearGgmlStorage>> linear_ggml_storage() const override {
    // lowbit's linear suffix -> llama.cpp's tensor name in a block (as read_layer reads them).
    static constexpr std::pair<const char*, const char*> kNames[] = {
        {"q_proj", "attn_q"},      {"k_proj", "attn_k"}, {"v_proj", "attn_v"},     {"o_proj", "attn_output"},
        {"gate_proj", "ffn_gate"}, {"up_proj", "ffn_up"}, {"down_proj", "ffn_down"}};
    std::map<std::string, LinearGgmlStorage> out;
    auto add = [&](const std::string& linear, const std::string& tensor) -> Status {
      const GgufTensorInfo* info = gguf_.find_tensor(tensor);
      const GgmlTypeTraits* t = info != nullptr ? find_ggml_type(info->type_id) : nullptr;
      if (t == nullptr) return make_error("{}: no tensor '{}' of a type lowbit reads", gguf_.path(), tensor);
      LinearGgmlStorage& s = out[linear];
      s.type = t->type;
      if (t->min_offset >= 0) {
        const int64_t n_blocks = info->n_elements() / t->block_size;
        s.block_mins.resize(static_cast<size_t>(n_blocks));
        ggml_block_mins(*t, info->data, n_blocks, s.block_mins.data());
      }
      return Status::ok_status();
    };
    for (int i = 0; i < config().n_layers; ++i) {
      for (const auto& [suffix, name] : kNames) {
        LB_RETURN_IF_ERROR(add(fmt::format("layers.{}.{}", i, suffix), fmt::format("blk.{}.{}.weight", i, name)));
      }
    }
    LB_RETURN_IF_ERROR(add("lm_head", config().tied_embeddings ? "token_embd.weight" : "output.weight"));
    return out;
  }

 private:
  GgufModelReader reader() const { return GgufModelReader{gguf_}; }

  GgufFile gguf_;  // keeps the mapping; tensors are dequantized on demand
};

}  // namespace

Expected<std::unique_ptr<ModelSource>> open_gguf_source(const std::string& path, const LoadOptions& options) {
  LB_ASSIGN_OR_RETURN(GgufFile gguf, GgufFile::open(path));
  LB_ASSIGN_OR_RETURN(std::string arch, gguf.get_string("general.architecture"));
  LB_ASSIGN_OR_RETURN(ModelConfig config, read_config(gguf, arch));
  LB_RETURN_IF_ERROR(config.validate(path));
  // The layer count must agree with the tensors present before anything is sized by it.
  for (int i = 0; i < config.n_layers; ++i) {
    const std::string name = fmt::format("blk.{}.attn_norm.weight", i);
    if (gguf.find_tensor(name) == nullptr) {
      return make_error("{}: metadata '{}.block_count' is {} but tensor '{}' is missing", path, arch,
                        config.n_layers, name);
    }
  }
  return std::unique_ptr<ModelSource>(std::make_unique<GgufSource>(std::move(gguf), std::move(config), options));
}

}  // namespace lowbit
