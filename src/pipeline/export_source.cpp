#include "pipeline/export_source.h"

#include <cstring>
#include <optional>
#include <set>

#include "formats/gguf_blocks.h"
#include "model/lowbit_file.h"
#include "pipeline/export_gguf_names.h"

namespace lowbit {
namespace {

constexpr const char* kLinearRoles[] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

// --------------------------------------------------------------- lowbit model file

class LowbitExportSource : public ExportSource {
 public:
  LowbitExportSource(std::unique_ptr<ModelSource> model, LowbitModelFile file)
      : ExportSource(std::move(model), ExportSourceKind::kLowbit), file_(std::move(file)) {}

  Status index() {
    std::set<std::string> known;
    for (ExportTensor& t : candidate_tensors()) {
      known.insert(t.name);
      if (!file_.has(t.name)) continue;
      const nlohmann::json* format = file_.record_field(t.name, "format");
      if (format == nullptr || !format->is_string()) return make_error("{}: tensor '{}' has no format", path(), t.name);
      t.format = format->get<std::string>();
      t.outliers = file_.record_field(t.name, "outliers") != nullptr;
      t.lowrank = file_.record_field(t.name, "lowrank") != nullptr;
      tensors_.push_back(std::move(t));
    }
    for (const StoredTensor& s : file_.summary().tensors) {
      if (!known.contains(s.name)) return make_error("{}: tensor '{}' is not one lowbit can export", path(), s.name);
    }
    return Status::ok_status();
  }

  const GgufFile* gguf_header() const override { return &file_.header(); }

  Expected<QuantizedWeight> read(const ExportTensor& t) const override {
    LB_ASSIGN_OR_RETURN(QuantizedWeight q, file_.read(t.name, t.shape));
    file_.drop_pages(t.name);  // q holds a copy
    return q;
  }

 protected:
  Expected<nlohmann::json> kv_configuration() const override { return file_.info().kv; }

 private:
  LowbitModelFile file_;
};

// --------------------------------------------------------------- GGUF

// The stored format of a GGUF type: "fp32", "fp16", "bf16" (block formats with
// the same bytes) or a llama.cpp block type's name; "" when lowbit cannot read it.
std::string gguf_stored_format(uint32_t type_id) {
  switch (static_cast<GgmlType>(type_id)) {
    case GgmlType::F32: return kFp32Storage;
    case GgmlType::F16: return "fp16";
    case GgmlType::BF16: return "bf16";
    default: break;
  }
  const GgufBlockType* block = find_gguf_block_type(type_id);
  return block != nullptr ? block->name : "";
}

class GgufExportSource : public ExportSource {
 public:
  GgufExportSource(std::unique_ptr<ModelSource> model, GgufFile gguf)
      : ExportSource(std::move(model), ExportSourceKind::kGguf), gguf_(std::move(gguf)) {}

  Status index() {
    std::set<std::string> known;
    for (ExportTensor& t : candidate_tensors()) {
      const std::string name = gguf_tensor_name(t.layer, t.role);
      const GgufTensorInfo* info = name.empty() ? nullptr : gguf_.find_tensor(name);
      if (info == nullptr) continue;
      known.insert(name);
      const std::vector<int64_t> dims(t.shape.rbegin(), t.shape.rend());
      if (info->dims != dims) {
        return make_error("{}: tensor '{}' has ne [{}], expected [{}]", path(), name, fmt::join(info->dims, ", "),
                          fmt::join(dims, ", "));
      }
      t.format = gguf_stored_format(info->type_id);
      if (t.format.empty()) {
        return make_error("{}: tensor '{}' is stored as {}, which lowbit cannot read", path(), name,
                          ggml_type_name(info->type_id));
      }
      names_[t.name] = name;
      tensors_.push_back(std::move(t));
    }
    for (const GgufTensorInfo& info : gguf_.tensors()) {
      if (!known.contains(info.name)) {
        return make_error("{}: tensor '{}' is not one lowbit reads; exporting would drop it", path(), info.name);
      }
    }
    return Status::ok_status();
  }

  const GgufFile* gguf_header() const override { return &gguf_; }

  Expected<QuantizedWeight> read(const ExportTensor& t) const override {
    const GgufTensorInfo* info = gguf_.find_tensor(names_.at(t.name));
    QuantizedWeight q;
    q.format = t.format;
    q.tensor.rows = t.is_matrix() ? t.shape[0] : 1;
    q.tensor.cols = t.shape.back();
    q.tensor.codes.assign(info->data, info->data + info->n_bytes);
    return q;
  }

 private:
  GgufFile gguf_;
  std::map<std::string, std::string> names_;  // lowbit name -> GGUF name
};

// --------------------------------------------------------------- FP32 sources

class FloatExportSource : public ExportSource {
 public:
  explicit FloatExportSource(std::unique_ptr<ModelSource> model)
      : ExportSource(std::move(model), ExportSourceKind::kFloat) {
    const bool has_rope_freqs = false;  // HF and llama2.c files carry none (llama3 scaling is in the config)
    for (ExportTensor& t : candidate_tensors()) {
      const bool bias = t.role.ends_with(".bias");
      const bool qkv = t.role.starts_with("q_proj") || t.role.starts_with("k_proj") || t.role.starts_with("v_proj");
      if (t.role.ends_with("_norm_bias") || (bias && !(qkv && config().qkv_bias))) continue;
      if (t.role == "lm_head" && config().tied_embeddings) continue;
      if (t.role == "rope_freqs" && !has_rope_freqs) continue;
      t.format = kFp32Storage;
      tensors_.push_back(std::move(t));
    }
  }

  Expected<QuantizedWeight> read(const ExportTensor& t) const override {
    LB_ASSIGN_OR_RETURN(std::vector<float> values, read_values(t));
    const int64_t rows = t.is_matrix() ? t.shape[0] : 1;
    return fp32_weight(values.data(), rows, t.shape.back());
  }

 private:
  Expected<std::vector<float>> read_values(const ExportTensor& t) const {
    if (t.layer < 0) {
      if (t.role == "token_embedding") return model_->token_embedding();
      if (t.role == "output_norm") return model_->output_norm();
      if (t.role == "lm_head") {
        LB_ASSIGN_OR_RETURN(Matrix m, model_->lm_head());
        return std::move(m.data);
      }
      return model_->rope_freq_factors();
    }
    // One decoder layer is read for all of its tensors.
    if (!cached_ || cached_->first != t.layer) {
      cached_.reset();
      LB_ASSIGN_OR_RETURN(LayerWeights l, model_->layer(t.layer));
      cached_.emplace(t.layer, std::move(l));
    }
    const LayerWeights& l = cached_->second;
    if (t.role == "attn_norm") return l.attn_norm;
    if (t.role == "ffn_norm") return l.ffn_norm;
    const bool bias = t.role.ends_with(".bias");
    const Matrix& m = linear_matrix(l, bias ? t.role.substr(0, t.role.size() - 5) : t.role);
    return bias ? m.bias : m.data;
  }

  mutable std::optional<std::pair<int, LayerWeights>> cached_;
};

}  // namespace

QuantizedWeight fp32_weight(const float* values, int64_t rows, int64_t cols) {
  QuantizedWeight q;
  q.format = kFp32Storage;
  q.tensor.rows = rows;
  q.tensor.cols = cols;
  q.tensor.codes.resize(static_cast<size_t>(rows * cols) * sizeof(float));
  if (!q.tensor.codes.empty()) std::memcpy(q.tensor.codes.data(), values, q.tensor.codes.size());
  return q;
}

std::vector<ExportTensor> ExportSource::candidate_tensors() const {
  const ModelConfig& c = config();
  const int64_t dim = c.dim, vocab = c.vocab_size;
  std::vector<ExportTensor> out;
  auto add = [&out](int layer, const std::string& role, std::vector<int64_t> shape) {
    const std::string name = layer < 0 ? role : fmt::format("layers.{}.{}", layer, role);
    out.push_back({name, std::move(shape), layer, role, "", false, false});
  };
  add(-1, "token_embedding", {vocab, dim});
  for (int i = 0; i < c.n_layers; ++i) {
    add(i, "attn_norm", {dim});
    add(i, "attn_norm_bias", {dim});
    for (const char* role : kLinearRoles) {
      const std::string r = role;
      const int64_t rows = r == "q_proj" ? c.q_dim() : (r == "k_proj" || r == "v_proj") ? c.kv_dim()
                           : (r == "gate_proj" || r == "up_proj")                   ? c.ffn_dim
                                                                                     : dim;
      const int64_t cols = r == "o_proj" ? c.q_dim() : r == "down_proj" ? c.ffn_dim : dim;
      if (r == "gate_proj") {
        add(i, "ffn_norm", {dim});
        add(i, "ffn_norm_bias", {dim});
      }
      add(i, r, {rows, cols});
      add(i, r + ".bias", {rows});
    }
  }
  add(-1, "output_norm", {dim});
  add(-1, "lm_head", {vocab, dim});
  add(-1, "rope_freqs", {c.head_dim / 2});
  return out;
}

Expected<std::vector<std::string>> ExportSource::runtime_transforms() const {
  std::vector<std::string> out;
  LB_ASSIGN_OR_RETURN(std::optional<RotationSpec> rotation, model_->rotation());
  if (rotation && rotation->online_down) {
    out.push_back("an online Hadamard transform of down_proj's input (lowbit.rotation \"online_down\": true)");
  }
  LB_ASSIGN_OR_RETURN(auto act, model_->act_quantizers());
  if (!act.empty()) {
    out.push_back(fmt::format("activation quantization (\"act\" on {} linears, {} the first)", act.size(),
                              act.begin()->first));
  }
  LB_ASSIGN_OR_RETURN(nlohmann::json kv, kv_configuration());
  if (!kv.is_null()) out.push_back("a quantized KV cache (lowbit.kv)");
  for (const ExportTensor& t : tensors_) {
    if (t.role.ends_with("_norm_bias")) {
      out.push_back(fmt::format("RMSNorm shifts ({}, from outlier migration)", t.name));
      break;
    }
  }
  return out;
}

Expected<std::unique_ptr<ExportSource>> ExportSource::open(const std::string& path, const LoadOptions& options) {
  LB_ASSIGN_OR_RETURN(std::unique_ptr<ModelSource> model, open_model_source(path, options));
  const std::string format = model->summary().format;
  if (format == "lowbit") {
    LB_ASSIGN_OR_RETURN(LowbitModelFile file, LowbitModelFile::open(path));
    auto source = std::make_unique<LowbitExportSource>(std::move(model), std::move(file));
    LB_RETURN_IF_ERROR(source->index());
    return std::unique_ptr<ExportSource>(std::move(source));
  }
  if (format == "gguf") {
    LB_ASSIGN_OR_RETURN(GgufFile gguf, GgufFile::open(path));
    auto source = std::make_unique<GgufExportSource>(std::move(model), std::move(gguf));
    LB_RETURN_IF_ERROR(source->index());
    return std::unique_ptr<ExportSource>(std::move(source));
  }
  return std::unique_ptr<ExportSource>(std::make_unique<FloatExportSource>(std::move(model)));
}

}  // namespace lowbit
