// llama2.c checkpoint (the legacy "version 0" .bin that run.c reads) -> LoadedModel.
// Layout, all little-endian:
//   7 x i32: dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
//            (vocab_size < 0 means the classifier is stored separately)
//   f32 token_embedding_table [vocab, dim]
//   f32 rms_att_weight [L, dim], wq [L, n_heads*hd, dim], wk [L, kv_dim, dim],
//       wv [L, kv_dim, dim], wo [L, dim, n_heads*hd], rms_ffn_weight [L, dim],
//       w1 [L, hidden, dim], w2 [L, dim, hidden], w3 [L, hidden, dim]
//   f32 rms_final_weight [dim]
//   f32 freq_cis_real [seq_len, hd/2], freq_cis_imag [seq_len, hd/2] (unused)
//   f32 wcls [vocab, dim] only when vocab_size < 0
// hd = dim / n_heads. RoPE rotates adjacent pairs with theta 10000; RMSNorm eps 1e-5.
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/byte_reader.h"
#include "core/mapped_file.h"
#include "model/loader.h"

namespace lowbit {
namespace {

constexpr uint32_t kVersionedMagic = 0x616b3432;  // "ak42": export.py version 1/2 files
constexpr size_t kHeaderInts = 7;

struct Llama2cHeader {
  int64_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
  bool shared_classifier;
};

Expected<Llama2cHeader> read_header(ByteReader& r) {
  int32_t v[kHeaderInts];
  for (size_t i = 0; i < kHeaderInts; ++i) {
    LB_ASSIGN_OR_RETURN(v[i], r.read<int32_t>("header"));
  }
  if (static_cast<uint32_t>(v[0]) == kVersionedMagic) {
    return make_error("{}: llama2.c export version 1/2 (magic \"ak42\") is not supported; export with "
                      "version 0 (legacy_export)", r.source());
  }
  Llama2cHeader h{v[0], v[1], v[2], v[3], v[4], std::abs(static_cast<int64_t>(v[5])), v[6], v[5] > 0};
  const char* names[] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
  const int64_t values[] = {h.dim, h.hidden_dim, h.n_layers, h.n_heads, h.n_kv_heads, h.vocab_size, h.seq_len};
  // Caps keep every size product below 2^56 bytes, so the size check cannot overflow.
  const int64_t limits[] = {1 << 20, 1 << 20, 1 << 12, 1 << 12, 1 << 12, 1 << 24, 1 << 24};
  for (size_t i = 0; i < kHeaderInts; ++i) {
    if (values[i] <= 0 || values[i] > limits[i]) {
      return make_error("{}: header {} = {} is out of range [1, {}] (not a llama2.c checkpoint?)", r.source(),
                        names[i], values[i], limits[i]);
    }
  }
  if (h.dim % h.n_heads != 0 || h.n_heads % h.n_kv_heads != 0 || (h.dim / h.n_heads) % 2 != 0) {
    return make_error("{}: header dim {}, n_heads {}, n_kv_heads {} are inconsistent (need dim % n_heads == 0, "
                      "n_heads % n_kv_heads == 0, even head size)", r.source(), h.dim, h.n_heads, h.n_kv_heads);
  }
  return h;
}

// Copies `count` floats from the reader.
Status read_floats(ByteReader& r, float* out, int64_t count, const char* what) {
  const uint64_t bytes = static_cast<uint64_t>(count) * sizeof(float);
  if (bytes > r.remaining()) return r.truncated(what, bytes);
  std::memcpy(out, r.data() + r.offset(), bytes);
  return r.skip(bytes, what);
}

// Reads a [L, rows, cols] array into one Matrix per layer.
Status read_stacked(ByteReader& r, std::vector<LayerWeights>& layers, Matrix LayerWeights::*member, int64_t rows,
                    int64_t cols, const char* what) {
  for (auto& layer : layers) {
    Matrix& m = layer.*member;
    m.rows = rows;
    m.cols = cols;
    m.data.resize(static_cast<size_t>(rows * cols));
    LB_RETURN_IF_ERROR(read_floats(r, m.data.data(), rows * cols, what));
  }
  return Status::ok_status();
}

// Reads a [L, dim] array of norm weights.
Status read_stacked(ByteReader& r, std::vector<LayerWeights>& layers, std::vector<float> LayerWeights::*member,
                    int64_t dim, const char* what) {
  for (auto& layer : layers) {
    (layer.*member).resize(static_cast<size_t>(dim));
    LB_RETURN_IF_ERROR(read_floats(r, (layer.*member).data(), dim, what));
  }
  return Status::ok_status();
}

ModelConfig make_config(const Llama2cHeader& h) {
  ModelConfig c;
  c.architecture = "llama";
  c.dim = static_cast<int>(h.dim);
  c.ffn_dim = static_cast<int>(h.hidden_dim);
  c.n_layers = static_cast<int>(h.n_layers);
  c.n_heads = static_cast<int>(h.n_heads);
  c.n_kv_heads = static_cast<int>(h.n_kv_heads);
  c.head_dim = static_cast<int>(h.dim / h.n_heads);
  c.vocab_size = static_cast<int>(h.vocab_size);
  c.max_seq_len = static_cast<int>(h.seq_len);
  c.norm_eps = 1e-5f;
  c.rope_theta = 10000.0;
  c.rope_layout = RopeLayout::kAdjacentPairs;
  c.tied_embeddings = h.shared_classifier;
  return c;
}

// The tensors in file order, for the size check and `lowbit info`.
std::vector<StoredTensor> stored_tensors(const Llama2cHeader& h) {
  const int64_t L = h.n_layers, dim = h.dim, hid = h.hidden_dim, hd = h.dim / h.n_heads;
  const int64_t kv = h.n_kv_heads * hd;
  std::vector<StoredTensor> t = {
      {"token_embedding_table", "f32", {h.vocab_size, dim}},
      {"rms_att_weight", "f32", {L, dim}},
      {"wq", "f32", {L, h.n_heads * hd, dim}},
      {"wk", "f32", {L, kv, dim}},
      {"wv", "f32", {L, kv, dim}},
      {"wo", "f32", {L, dim, h.n_heads * hd}},
      {"rms_ffn_weight", "f32", {L, dim}},
      {"w1", "f32", {L, hid, dim}},
      {"w2", "f32", {L, dim, hid}},
      {"w3", "f32", {L, hid, dim}},
      {"rms_final_weight", "f32", {dim}},
      {"freq_cis_real", "f32", {h.seq_len, hd / 2}},
      {"freq_cis_imag", "f32", {h.seq_len, hd / 2}},
  };
  if (!h.shared_classifier) t.push_back({"wcls", "f32", {h.vocab_size, dim}});
  for (auto& s : t) {
    s.n_bytes = sizeof(float);
    for (int64_t d : s.shape) s.n_bytes *= static_cast<uint64_t>(d);
  }
  return t;
}

}  // namespace

Expected<LoadedModel> load_llama2c_model(const std::string& path, const std::string& tokenizer_path) {
  LB_ASSIGN_OR_RETURN(MappedFile file, MappedFile::open(path));
  ByteReader r(file.data(), file.size(), path);
  LB_ASSIGN_OR_RETURN(Llama2cHeader h, read_header(r));

  LoadedModel m;
  m.summary.format = "llama2c";
  m.summary.path = path;
  m.summary.file_bytes = file.size();
  m.summary.tensors = stored_tensors(h);
  uint64_t expected = kHeaderInts * sizeof(int32_t);
  for (const auto& t : m.summary.tensors) expected += t.n_bytes;
  if (expected != file.size()) {
    return make_error("{}: file has {} bytes but the header (dim {}, hidden_dim {}, n_layers {}, n_heads {}, "
                      "n_kv_heads {}, vocab_size {}, seq_len {}, {} classifier) implies {}", path, file.size(),
                      h.dim, h.hidden_dim, h.n_layers, h.n_heads, h.n_kv_heads, h.vocab_size, h.seq_len,
                      h.shared_classifier ? "shared" : "separate", expected);
  }
  m.config = make_config(h);
  const ModelConfig& c = m.config;
  const int64_t dim = c.dim, q = c.q_dim(), kv = c.kv_dim(), hid = c.ffn_dim, vocab = c.vocab_size;

  ModelWeights& w = m.weights;
  w.token_embedding.resize(static_cast<size_t>(vocab * dim));
  LB_RETURN_IF_ERROR(read_floats(r, w.token_embedding.data(), vocab * dim, "token_embedding_table"));
  w.layers.resize(c.n_layers);
  LB_RETURN_IF_ERROR(read_stacked(r, w.layers, &LayerWeights::attn_norm, dim, "rms_att_weight"));
  LB_RETURN_IF_ERROR(read_stacked(r, w.layers, &LayerWeights::q_proj, q, dim, "wq"));
  LB_RETURN_IF_ERROR(read_stacked(r, w.layers, &LayerWeights::k_proj, kv, dim, "wk"));
  LB_RETURN_IF_ERROR(read_stacked(r, w.layers, &LayerWeights::v_proj, kv, dim, "wv"));
  LB_RETURN_IF_ERROR(read_stacked(r, w.layers, &LayerWeights::o_proj, dim, q, "wo"));
  LB_RETURN_IF_ERROR(read_stacked(r, w.layers, &LayerWeights::ffn_norm, dim, "rms_ffn_weight"));
  LB_RETURN_IF_ERROR(read_stacked(r, w.layers, &LayerWeights::gate_proj, hid, dim, "w1"));
  LB_RETURN_IF_ERROR(read_stacked(r, w.layers, &LayerWeights::down_proj, dim, hid, "w2"));
  LB_RETURN_IF_ERROR(read_stacked(r, w.layers, &LayerWeights::up_proj, hid, dim, "w3"));
  w.output_norm.resize(static_cast<size_t>(dim));
  LB_RETURN_IF_ERROR(read_floats(r, w.output_norm.data(), dim, "rms_final_weight"));
  // RoPE tables: recomputed by the forward pass from theta.
  LB_RETURN_IF_ERROR(r.skip(static_cast<uint64_t>(c.max_seq_len) * c.head_dim * sizeof(float), "freq_cis"));
  if (!c.tied_embeddings) {
    w.lm_head.rows = vocab;
    w.lm_head.cols = dim;
    w.lm_head.data.resize(static_cast<size_t>(vocab * dim));
    LB_RETURN_IF_ERROR(read_floats(r, w.lm_head.data.data(), vocab * dim, "wcls"));
  }
  LB_RETURN_IF_ERROR(c.validate(path));
  LB_RETURN_IF_ERROR(w.validate(c, path));
  if (!tokenizer_path.empty()) {
    LB_ASSIGN_OR_RETURN(m.tokenizer, load_llama2c_tokenizer(tokenizer_path, c.vocab_size));
  }
  return m;
}

}  // namespace lowbit
