// llama2.c checkpoint (the legacy "version 0" .bin that run.c reads) -> ModelSource.
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
#include <map>
#include <string>
#include <vector>

#include "core/byte_reader.h"
#include "core/mapped_file.h"
#include "model/model_source.h"

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

// The file's tensors in order and where each starts; every range lies inside the
// file once its size has been checked against end().
struct Llama2cLayout {
  std::vector<StoredTensor> tensors;
  std::map<std::string, uint64_t> offsets;  // tensor name -> byte offset
  uint64_t end = 0;                         // bytes the header implies
};

Llama2cLayout make_layout(const Llama2cHeader& h) {
  Llama2cLayout layout;
  layout.tensors = stored_tensors(h);
  layout.end = kHeaderInts * sizeof(int32_t);
  for (const auto& t : layout.tensors) {
    layout.offsets[t.name] = layout.end;
    layout.end += t.n_bytes;
  }
  return layout;
}

class Llama2cSource : public ModelSource {
 public:
  Llama2cSource(MappedFile file, Llama2cLayout layout, ModelConfig config, FileSummary summary,
                const LoadOptions& options)
      : ModelSource(std::move(config), std::move(summary), options),
        file_(std::move(file)),
        layout_(std::move(layout)) {}

 protected:
  Expected<std::vector<float>> read_token_embedding() const override {
    return floats("token_embedding_table", 0, static_cast<int64_t>(config().vocab_size) * config().dim);
  }

  // Stacked arrays [n_layers, rows, cols]: layer i is the i-th slice.
  Expected<LayerWeights> read_layer(int i) const override {
    const ModelConfig& c = config();
    const int64_t dim = c.dim, q = c.q_dim(), kv = c.kv_dim(), hid = c.ffn_dim;
    LayerWeights l;
    l.attn_norm = floats("rms_att_weight", i, dim);
    l.q_proj = matrix("wq", i, q, dim);
    l.k_proj = matrix("wk", i, kv, dim);
    l.v_proj = matrix("wv", i, kv, dim);
    l.o_proj = matrix("wo", i, dim, q);
    l.ffn_norm = floats("rms_ffn_weight", i, dim);
    l.gate_proj = matrix("w1", i, hid, dim);
    l.down_proj = matrix("w2", i, dim, hid);
    l.up_proj = matrix("w3", i, hid, dim);
    return l;
  }

  Expected<std::vector<float>> read_output_norm() const override { return floats("rms_final_weight", 0, config().dim); }

  Expected<Matrix> read_lm_head() const override { return matrix("wcls", 0, config().vocab_size, config().dim); }

  // The stored freq_cis tables are not read: the forward pass computes RoPE from theta.
  Expected<std::vector<float>> read_rope_freq_factors() const override { return std::vector<float>(); }

  // A llama2.c checkpoint holds no vocabulary; LoadOptions::tokenizer_path supplies one.
  Expected<std::unique_ptr<Tokenizer>> read_tokenizer() const override { return std::unique_ptr<Tokenizer>(); }

 private:
  // Slice `index` of `count` floats of a stored array.
  std::vector<float> floats(const std::string& tensor, int64_t index, int64_t count) const {
    std::vector<float> out(static_cast<size_t>(count));
    const uint64_t offset = layout_.offsets.at(tensor) + static_cast<uint64_t>(index * count) * sizeof(float);
    std::memcpy(out.data(), file_.data() + offset, out.size() * sizeof(float));
    return out;
  }
  Matrix matrix(const std::string& tensor, int64_t index, int64_t rows, int64_t cols) const {
    Matrix m;
    m.rows = rows;
    m.cols = cols;
    m.data = floats(tensor, index, rows * cols);
    return m;
  }

  MappedFile file_;
  Llama2cLayout layout_;
};

}  // namespace

Expected<std::unique_ptr<ModelSource>> open_llama2c_source(const std::string& path, const LoadOptions& options) {
  LB_ASSIGN_OR_RETURN(MappedFile file, MappedFile::open(path));
  ByteReader r(file.data(), file.size(), path);
  LB_ASSIGN_OR_RETURN(Llama2cHeader h, read_header(r));
  Llama2cLayout layout = make_layout(h);
  if (layout.end != file.size()) {
    return make_error("{}: file has {} bytes but the header (dim {}, hidden_dim {}, n_layers {}, n_heads {}, "
                      "n_kv_heads {}, vocab_size {}, seq_len {}, {} classifier) implies {}", path, file.size(),
                      h.dim, h.hidden_dim, h.n_layers, h.n_heads, h.n_kv_heads, h.vocab_size, h.seq_len,
                      h.shared_classifier ? "shared" : "separate", layout.end);
  }
  ModelConfig config = make_config(h);
  LB_RETURN_IF_ERROR(config.validate(path));
  FileSummary summary;
  summary.format = "llama2c";
  summary.path = path;
  summary.file_bytes = file.size();
  summary.tensors = layout.tensors;
  return std::unique_ptr<ModelSource>(std::make_unique<Llama2cSource>(std::move(file), std::move(layout),
                                                                      std::move(config), std::move(summary), options));
}

}  // namespace lowbit
