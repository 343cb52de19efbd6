// lowbit model file (model/lowbit_file.h) → ModelSource. Quantized tensors are
// dequantized to FP32 piece by piece like any other source (the quantization
// pipeline's view); stored_tensor() hands out each tensor as stored, so the
// runtime (model/runtime_model.h) packs it without an FP32 copy.
#include "formats/gguf_blocks.h"
#include "model/lowbit_file.h"
#include "model/model_source.h"

namespace lowbit {
namespace {

struct LinearShape {
  const char* suffix;
  int64_t rows, cols;
  bool bias;
};

std::vector<LinearShape> linear_shapes(const ModelConfig& c) {
  return {{"q_proj", c.q_dim(), c.dim, c.qkv_bias},  {"k_proj", c.kv_dim(), c.dim, c.qkv_bias},
          {"v_proj", c.kv_dim(), c.dim, c.qkv_bias}, {"o_proj", c.dim, c.q_dim(), false},
          {"gate_proj", c.ffn_dim, c.dim, false},    {"up_proj", c.ffn_dim, c.dim, false},
          {"down_proj", c.dim, c.ffn_dim, false}};
}

class LowbitSource : public ModelSource {
 public:
  explicit LowbitSource(LowbitModelFile file, const LoadOptions& options)
      : ModelSource(file.config(), file.summary(), options), file_(std::move(file)) {}

  Expected<std::map<std::string, QuantizedWeight>> quantized_linears() const override {
    const ModelConfig& c = config();
    std::map<std::string, QuantizedWeight> out;
    for (int i = 0; i < c.n_layers; ++i) {
      for (const LinearShape& s : linear_shapes(c)) {
        const std::string name = fmt::format("layers.{}.{}", i, s.suffix);
        if (!file_.is_quantized(name)) continue;
        LB_ASSIGN_OR_RETURN(out[name], file_.read(name, {s.rows, s.cols}));
      }
    }
    if (!c.tied_embeddings && file_.is_quantized("lm_head")) {
      LB_ASSIGN_OR_RETURN(out["lm_head"], file_.read("lm_head", {c.vocab_size, c.dim}));
    }
    return out;
  }

  Expected<std::map<std::string, ActQuantAttachment>> act_quantizers() const override {
    std::map<std::string, ActQuantAttachment> out;
    for (int i = 0; i < config().n_layers; ++i) {
      for (const LinearShape& s : linear_shapes(config())) {
        const std::string name = fmt::format("layers.{}.{}", i, s.suffix);
        const nlohmann::json* act = file_.record_field(name, "act");
        if (act == nullptr) continue;
        LB_ASSIGN_OR_RETURN(out[name], parse_act_attachment(*act, fmt::format("{}: tensor '{}'", file_.path(), name)));
      }
    }
    return out;
  }

  bool has_stored_tensors() const override { return true; }

  Expected<std::map<std::string, LinearGgmlStorage>> linear_ggml_storage() const override {
    const ModelConfig& c = config();
    std::map<std::string, LinearGgmlStorage> out;
    auto add = [&](const std::string& linear, const std::string& tensor, int64_t rows, int64_t cols) -> Status {
      const nlohmann::json* format = file_.record_field(tensor, "format");
      if (format == nullptr || !format->is_string() || file_.record_field(tensor, "lowrank") != nullptr ||
          file_.record_field(tensor, "outliers") != nullptr) {
        return Status::ok_status();
      }
      const std::string f = format->get<std::string>();
      LinearGgmlStorage s;
      const GgmlTypeTraits* t = nullptr;
      if (f == kFp32Storage) {
        s.type = GgmlType::F32;
      } else if (f == "fp16") {
        s.type = GgmlType::F16;
      } else if (f == "bf16") {
        s.type = GgmlType::BF16;
      } else if (const GgufBlockType* g = find_gguf_block_type(f); g != nullptr && (t = find_ggml_type(g->type_id))) {
        s.type = t->type;
      } else {
        return Status::ok_status();
      }
      if (t != nullptr && t->min_offset >= 0) {
        // The block minimums live in the GGUF block bytes the record stores as codes.
        LB_ASSIGN_OR_RETURN(QuantizedWeight q, file_.read(tensor, {rows, cols}));
        file_.drop_pages(tensor);
        const int64_t n_blocks = rows * cols / t->block_size;
        if (q.tensor.codes.size() != static_cast<size_t>(n_blocks) * t->bytes_per_block) {
          return make_error("{}: tensor '{}' holds {} bytes of {} blocks, expected {}", file_.path(), tensor,
                            q.tensor.codes.size(), f, static_cast<size_t>(n_blocks) * t->bytes_per_block);
        }
        s.block_mins.resize(static_cast<size_t>(n_blocks));
        ggml_block_mins(*t, q.tensor.codes.data(), n_blocks, s.block_mins.data());
      }
      out[linear] = std::move(s);
      return Status::ok_status();
    };
    for (int i = 0; i < c.n_layers; ++i) {
      for (const LinearShape& s : linear_shapes(c)) {
        const std::string name = fmt::format("layers.{}.{}", i, s.suffix);
        LB_RETURN_IF_ERROR(add(name, name, s.rows, s.cols));
      }
    }
    LB_RETURN_IF_ERROR(add("lm_head", c.tied_embeddings ? "token_embedding" : "lm_head", c.vocab_size, c.dim));
    return out;
  }

  Expected<std::optional<QuantizedWeight>> stored_tensor(const std::string& name,
                                                         const std::vector<int64_t>& shape) const override {
    if (!file_.has(name)) return std::optional<QuantizedWeight>();
    LB_ASSIGN_OR_RETURN(QuantizedWeight q, file_.read(name, shape));
    file_.drop_pages(name);  // q holds its own copy; the mapped pages would only double the resident size
    return std::optional<QuantizedWeight>(std::move(q));
  }

  Expected<std::optional<RotationSpec>> rotation() const override {
    if (file_.info().rotation.is_null()) return std::optional<RotationSpec>();
    const std::string where = file_.path() + ": lowbit.rotation";
    LB_ASSIGN_OR_RETURN(RotationSpec spec, rotation_spec_from_json(file_.info().rotation, where));
    return std::optional<RotationSpec>(spec);
  }

 protected:
  Expected<std::vector<float>> read_token_embedding() const override {
    return file_.read_fp32("token_embedding", {config().vocab_size, config().dim});
  }

  Expected<LayerWeights> read_layer(int i) const override {
    const ModelConfig& c = config();
    const std::string p = fmt::format("layers.{}.", i);
    LayerWeights l;
    LB_ASSIGN_OR_RETURN(l.attn_norm, file_.read_fp32(p + "attn_norm", {c.dim}));
    LB_ASSIGN_OR_RETURN(l.ffn_norm, file_.read_fp32(p + "ffn_norm", {c.dim}));
    if (file_.has(p + "attn_norm_bias")) {
      LB_ASSIGN_OR_RETURN(l.attn_norm_bias, file_.read_fp32(p + "attn_norm_bias", {c.dim}));
    }
    if (file_.has(p + "ffn_norm_bias")) {
      LB_ASSIGN_OR_RETURN(l.ffn_norm_bias, file_.read_fp32(p + "ffn_norm_bias", {c.dim}));
    }
    Matrix* matrices[] = {&l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.gate_proj, &l.up_proj, &l.down_proj};
    const std::vector<LinearShape> shapes = linear_shapes(c);
    for (size_t k = 0; k < shapes.size(); ++k) {
      Matrix& m = *matrices[k];
      m.rows = shapes[k].rows;
      m.cols = shapes[k].cols;
      LB_ASSIGN_OR_RETURN(m.data, file_.read_fp32(p + shapes[k].suffix, {m.rows, m.cols}));
      if (shapes[k].bias || file_.has(p + shapes[k].suffix + ".bias")) {
        LB_ASSIGN_OR_RETURN(m.bias, file_.read_fp32(p + shapes[k].suffix + ".bias", {m.rows}));
      }
    }
    return l;
  }

  Expected<std::vector<float>> read_output_norm() const override {
    return file_.read_fp32("output_norm", {config().dim});
  }

  Expected<Matrix> read_lm_head() const override {
    Matrix m;
    m.rows = config().vocab_size;
    m.cols = config().dim;
    LB_ASSIGN_OR_RETURN(m.data, file_.read_fp32("lm_head", {m.rows, m.cols}));
    return m;
  }

  Expected<std::vector<float>> read_rope_freq_factors() const override {
    if (!file_.has("rope_freqs")) return std::vector<float>();
    return file_.read_fp32("rope_freqs", {config().head_dim / 2});
  }

  Expected<std::unique_ptr<Tokenizer>> read_tokenizer() const override {
    // Only GGUF sources have their tokenizer copied (docs/FORMAT.md); others need --tokenizer.
    if (file_.header().find("tokenizer.ggml.model") == nullptr) return std::unique_ptr<Tokenizer>();
    return load_gguf_tokenizer(file_.header());
  }

 private:
  LowbitModelFile file_;
};

}  // namespace

Expected<std::unique_ptr<ModelSource>> open_lowbit_source(const std::string& path, const LoadOptions& options) {
  LB_ASSIGN_OR_RETURN(LowbitModelFile file, LowbitModelFile::open(path));
  return std::unique_ptr<ModelSource>(std::make_unique<LowbitSource>(std::move(file), options));
}

}  // namespace lowbit
