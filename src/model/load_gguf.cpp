// GGUF (llama.cpp) → LoadedModel. Tensor names follow llama.cpp's llama
// architecture (token_embd, blk.N.attn_q, ...). llama.cpp's converter un-permutes
// HF q/k rows into adjacent RoPE pairs for llama/mistral; qwen2 keeps NEOX
// (half-split) pairs.
#include <cmath>

#include "io/gguf.h"
#include "model/loader.h"

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
  c.n_layers = static_cast<int>(n_layers);
  c.dim = static_cast<int>(dim);
  c.n_heads = static_cast<int>(n_heads);
  c.n_kv_heads = static_cast<int>(gguf.get_int_or(p + "attention.head_count_kv", n_heads));
  c.ffn_dim = static_cast<int>(ffn);
  c.head_dim = n_heads > 0 ? static_cast<int>(gguf.get_int_or(p + "attention.key_length", dim / n_heads)) : 0;
  c.max_seq_len = static_cast<int>(gguf.get_int_or(p + "context_length", 2048));
  c.norm_eps = static_cast<float>(gguf.get_float_or(p + "attention.layer_norm_rms_epsilon", 1e-5));
  c.rope_theta = gguf.get_float_or(p + "rope.freq_base", 10000.0);
  c.rope_layout = arch == "qwen2" ? RopeLayout::kHalfSplit : RopeLayout::kAdjacentPairs;
  c.qkv_bias = gguf.find_tensor("blk.0.attn_q.bias") != nullptr;
  c.tied_embeddings = gguf.find_tensor("output.weight") == nullptr;
  const GgufTensorInfo* embd = gguf.find_tensor("token_embd.weight");
  if (embd == nullptr) return make_error("{}: missing tensor 'token_embd.weight'", gguf.path());
  if (embd->dims.size() != 2) return make_error("{}: tensor 'token_embd.weight' must be 2-D", gguf.path());
  c.vocab_size = static_cast<int>(embd->dims[1]);
  const int64_t rope_dims = gguf.get_int_or(p + "rope.dimension_count", c.head_dim);
  if (rope_dims != c.head_dim) {
    return make_error("{}: partial RoPE ({} of {} head dims) is not supported", gguf.path(), rope_dims,
                      c.head_dim);
  }
  return c;
}

}  // namespace

Expected<LoadedModel> load_gguf_model(const std::string& path) {
  LB_ASSIGN_OR_RETURN(GgufFile gguf, GgufFile::open(path));
  LB_ASSIGN_OR_RETURN(std::string arch, gguf.get_string("general.architecture"));
  LoadedModel model;
  LB_ASSIGN_OR_RETURN(model.config, read_config(gguf, arch));
  const ModelConfig& c = model.config;
  LB_RETURN_IF_ERROR(c.validate(path));

  GgufModelReader r{gguf};
  ModelWeights& w = model.weights;
  LB_ASSIGN_OR_RETURN(Matrix embedding, r.matrix("token_embd", c.vocab_size, c.dim, false));
  w.token_embedding = std::move(embedding.data);
  w.layers.resize(c.n_layers);
  for (int i = 0; i < c.n_layers; ++i) {
    LayerWeights& l = w.layers[i];
    const std::string b = "blk." + std::to_string(i) + ".";
    LB_ASSIGN_OR_RETURN(l.attn_norm, r.vector(b + "attn_norm.weight", c.dim));
    LB_ASSIGN_OR_RETURN(l.q_proj, r.matrix(b + "attn_q", c.q_dim(), c.dim, c.qkv_bias));
    LB_ASSIGN_OR_RETURN(l.k_proj, r.matrix(b + "attn_k", c.kv_dim(), c.dim, c.qkv_bias));
    LB_ASSIGN_OR_RETURN(l.v_proj, r.matrix(b + "attn_v", c.kv_dim(), c.dim, c.qkv_bias));
    LB_ASSIGN_OR_RETURN(l.o_proj, r.matrix(b + "attn_output", c.dim, c.q_dim(), false));
    LB_ASSIGN_OR_RETURN(l.ffn_norm, r.vector(b + "ffn_norm.weight", c.dim));
    LB_ASSIGN_OR_RETURN(l.gate_proj, r.matrix(b + "ffn_gate", c.ffn_dim, c.dim, false));
    LB_ASSIGN_OR_RETURN(l.up_proj, r.matrix(b + "ffn_up", c.ffn_dim, c.dim, false));
    LB_ASSIGN_OR_RETURN(l.down_proj, r.matrix(b + "ffn_down", c.dim, c.ffn_dim, false));
  }
  LB_ASSIGN_OR_RETURN(w.output_norm, r.vector("output_norm.weight", c.dim));
  if (!c.tied_embeddings) {
    LB_ASSIGN_OR_RETURN(w.lm_head, r.matrix("output", c.vocab_size, c.dim, false));
  }
  if (gguf.find_tensor("rope_freqs.weight") != nullptr) {
    LB_ASSIGN_OR_RETURN(w.rope_freq_factors, r.vector("rope_freqs.weight", c.head_dim / 2));
  }
  LB_RETURN_IF_ERROR(w.validate(c, path));

  LB_ASSIGN_OR_RETURN(model.tokenizer, load_gguf_tokenizer(gguf));

  model.summary.format = "gguf";
  model.summary.path = path;
  model.summary.file_bytes = gguf.file_size();
  for (const GgufTensorInfo& t : gguf.tensors()) {
    StoredTensor st;
    st.name = t.name;
    st.dtype = ggml_type_name(t.type_id);
    st.shape.assign(t.dims.rbegin(), t.dims.rend());
    st.n_bytes = t.n_bytes;
    model.summary.tensors.push_back(std::move(st));
  }
  return model;
}

}  // namespace lowbit
