#include "model/runtime_model.h"

#include <cmath>
#include <cstring>

#include "model/loader.h"
#include "model/packed_convert.h"
#include "model/block_shapes.h"
#include "model/packed_linear.h"

namespace lowbit {
namespace {

Status check_finite(const float* v, size_t n, const std::string& where) {
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(v[i])) return make_error("{} holds a non-finite value ({}) at index {}", where, v[i], i);
  }
  return Status::ok_status();
}

// The values a packed matrix can hold that are not finite: FP16/BF16 codes and
// group scales/minimums with an all-ones exponent, FP8 E4M3 NaN codes, row and
// tensor scales. (4-bit codes index a finite table; INT8 codes are integers.)
Status check_packed_finite(const PackedMatrix& p, const std::string& where) {
  auto half_finite = [](uint16_t h, bool bf16) { return bf16 ? (h & 0x7F80) != 0x7F80 : (h & 0x7C00) != 0x7C00; };
  for (const HugePageVector<uint16_t>* v : {&p.scales, &p.mins}) {
    for (size_t i = 0; i < v->size(); ++i) {
      if (!half_finite((*v)[i], p.bf16_scales)) return make_error("{}: scale {} is not finite", where, i);
    }
  }
  LB_RETURN_IF_ERROR(check_finite(p.row_scales.data(), p.row_scales.size(), where + " row scales"));
  if (!std::isfinite(p.tensor_scale)) return make_error("{}: tensor scale {} is not finite", where, p.tensor_scale);
  const int64_t rb = p.row_bytes();
  for (int64_t r = 0; r < p.rows; ++r) {
    const uint8_t* row = p.codes.data() + r * rb;
    for (int64_t c = 0; c < p.cols; ++c) {
      bool ok = true;
      if (p.kind == PackedKind::kFp16 || p.kind == PackedKind::kBf16) {
        uint16_t h = 0;
        std::memcpy(&h, row + 2 * c, 2);
        ok = half_finite(h, p.kind == PackedKind::kBf16);
      } else if (p.kind == PackedKind::kFp8Row) {
        ok = (row[c] & 0x7F) != 0x7F;
      }
      if (!ok) return make_error("{} holds a non-finite value at row {} column {}", where, r, c);
    }
  }
  return Status::ok_status();
}

std::string packed_label(const QuantizedWeight& q) { return fmt::format("{} {:.3f} bpw", q.format, q.bits_per_weight()); }

// Reads a source's stored tensors into runtime layers, one tensor at a time.
class RuntimeBuilder {
 public:
  RuntimeBuilder(const ModelSource& source, const AttachOptions& options, AttachReport* report)
      : src_(source), c_(source.config()), options_(options), report_(report) {}

  Expected<LlamaModel> build() {
    // The embedding first: its stored copy and packed form are the largest transient pair.
    bool head_shares = false;
    LB_ASSIGN_OR_RETURN(TokenEmbedding embedding, read_embedding());
    LB_ASSIGN_OR_RETURN(std::vector<float> rope_freqs, vector("rope_freqs", c_.head_dim / 2, false));
    std::vector<DecoderBlock> blocks;
    blocks.reserve(static_cast<size_t>(c_.n_layers));
    for (int i = 0; i < c_.n_layers; ++i) {
      LB_ASSIGN_OR_RETURN(DecoderBlock b, block(i, rope_freqs));
      blocks.push_back(std::move(b));
    }
    LB_ASSIGN_OR_RETURN(std::vector<float> output_norm, vector("output_norm", c_.dim, true));
    std::unique_ptr<Linear> head;
    if (c_.tied_embeddings) {
      LB_ASSIGN_OR_RETURN(head, tied_head(embedding));
      head_shares = embedding.packed_table() != nullptr;
    } else {
      LB_ASSIGN_OR_RETURN(head, linear("lm_head", c_.vocab_size, c_.dim, false, true));
    }
    return LlamaModel::assemble(c_, std::move(embedding), std::move(output_norm), std::move(blocks), std::move(head),
                                head_shares);
  }

 private:
  std::string where(const std::string& name) const { return fmt::format("{}: tensor '{}'", src_.path(), name); }

  Expected<std::optional<QuantizedWeight>> stored(const std::string& name, const std::vector<int64_t>& shape) const {
    return src_.stored_tensor(name, shape);
  }

  Expected<QuantizedWeight> required(const std::string& name, const std::vector<int64_t>& shape) const {
    LB_ASSIGN_OR_RETURN(std::optional<QuantizedWeight> q, stored(name, shape));
    if (!q) return make_error("{}: missing tensor '{}'", src_.path(), name);
    return std::move(*q);
  }

  Expected<std::vector<float>> fp32(const QuantizedWeight& q, const std::string& name) const {
    std::vector<float> out(static_cast<size_t>(q.rows() * q.cols()));
    LB_RETURN_IF_ERROR(dequantize_weight(q, out.data()).with_context(where(name)));
    LB_RETURN_IF_ERROR(check_finite(out.data(), out.size(), where(name)));
    return out;
  }

  // A vector [n]; empty when absent and not required.
  Expected<std::vector<float>> vector(const std::string& name, int64_t n, bool is_required) const {
    LB_ASSIGN_OR_RETURN(std::optional<QuantizedWeight> q, stored(name, {n}));
    if (!q) {
      if (is_required) return make_error("{}: missing tensor '{}'", src_.path(), name);
      return std::vector<float>();
    }
    return fp32(*q, name);
  }

  void count(const std::string& reason, const Linear& l) const {
    if (report_ == nullptr) return;
    if (reason.empty()) {
      ++report_->packed[l.packed_linear()->kernel_name()];
    } else {
      ++report_->dequantized[reason];
    }
  }

  // The runtime layer of a stored quantized weight (make_quantized_linear), checked finite.
  Expected<std::unique_ptr<Linear>> quantized(QuantizedWeight q, std::vector<float> bias, const std::string& name) const {
    std::string reason;
    auto l = make_quantized_linear(std::move(q), std::move(bias), options_, &reason);
    if (!l.ok()) return l.status().with_context(where(name));
    if (reason.empty()) {
      LB_RETURN_IF_ERROR(check_packed_finite((*l)->packed_linear()->packed(), where(name)));
    } else {
      const Matrix& m = static_cast<const QuantizedLinear&>(**l).dequantized();
      LB_RETURN_IF_ERROR(check_finite(m.data.data(), m.data.size(), where(name)));
    }
    count(reason, **l);
    return std::move(l).value();
  }

  // A linear [rows, cols] (+ bias [rows] when stored; required when bias_required).
  // fp16_head: an FP32-stored weight exact in FP16 runs as a packed FP16 linear
  // (what attach_quantized_linears does for the head of a quantized model).
  Expected<std::unique_ptr<Linear>> linear(const std::string& name, int64_t rows, int64_t cols, bool bias_required,
                                           bool fp16_head) const {
    LB_ASSIGN_OR_RETURN(QuantizedWeight q, required(name, {rows, cols}));
    LB_ASSIGN_OR_RETURN(std::vector<float> bias, vector(name + ".bias", rows, bias_required));
    if (q.format != kFp32Storage) return quantized(std::move(q), std::move(bias), name);
    Matrix m;
    m.rows = rows;
    m.cols = cols;
    LB_ASSIGN_OR_RETURN(m.data, fp32(q, name));
    q = QuantizedWeight();
    if (fp16_head && options_.packed) {
      if (std::optional<QuantizedWeight> h = exact_fp16_weight(m.data.data(), rows, cols)) {
        m.data = std::vector<float>();
        return quantized(std::move(*h), std::move(bias), name);
      }
    }
    m.bias = std::move(bias);
    return std::unique_ptr<Linear>(std::make_unique<DenseLinear>(std::move(m)));
  }

  Expected<DecoderBlock> block(int i, const std::vector<float>& rope_freqs) const {
    const std::string p = fmt::format("layers.{}.", i);
    LayerWeights norms;
    LB_ASSIGN_OR_RETURN(norms.attn_norm, vector(p + "attn_norm", c_.dim, true));
    LB_ASSIGN_OR_RETURN(norms.ffn_norm, vector(p + "ffn_norm", c_.dim, true));
    LB_ASSIGN_OR_RETURN(norms.attn_norm_bias, vector(p + "attn_norm_bias", c_.dim, false));
    LB_ASSIGN_OR_RETURN(norms.ffn_norm_bias, vector(p + "ffn_norm_bias", c_.dim, false));
    const auto shapes = block_linear_shapes(c_);
    std::array<std::unique_ptr<Linear>, 7> linears;
    for (size_t k = 0; k < linears.size(); ++k) {
      const bool bias = c_.qkv_bias && k < 3;  // q/k/v
      LB_ASSIGN_OR_RETURN(linears[k], linear(p + std::string(DecoderBlock::kLinearSuffixes[k]), shapes[k].rows,
                                             shapes[k].cols, bias, false));
    }
    return DecoderBlock::create(c_, i, std::move(norms), std::move(linears), rope_freqs);
  }

  // [vocab, dim], packed when its storage has a packed layout (an FP32 table exact in FP16 as FP16).
  Expected<TokenEmbedding> read_embedding() {
    const std::string name = "token_embedding";
    LB_ASSIGN_OR_RETURN(QuantizedWeight q, required(name, {c_.vocab_size, c_.dim}));
    if (options_.packed && q.format == kFp32Storage) {
      LB_ASSIGN_OR_RETURN(std::vector<float> table, fp32(q, name));
      std::optional<QuantizedWeight> h = exact_fp16_weight(table.data(), c_.vocab_size, c_.dim);
      if (!h) return TokenEmbedding::fp32(std::move(table), c_.dim);
      q = std::move(*h);
    }
    if (options_.packed && packed_unsupported_reason(q).empty()) {
      embedding_label_ = packed_label(q);
      auto packed = pack_quantized_weight(q);
      if (!packed.ok()) return packed.status().with_context(where(name));
      q = QuantizedWeight();  // only the packed layout stays resident
      LB_RETURN_IF_ERROR(check_packed_finite(*packed, where(name)));
      return TokenEmbedding::packed(std::make_shared<const PackedMatrix>(std::move(packed).value()), options_.isa);
    }
    LB_ASSIGN_OR_RETURN(std::vector<float> table, fp32(q, name));
    return TokenEmbedding::fp32(std::move(table), c_.dim);
  }

  // The head of tied embeddings: the packed table itself, or a copy of the FP32
  // one (the quantization pipeline may replace the head on its own).
  Expected<std::unique_ptr<Linear>> tied_head(const TokenEmbedding& e) const {
    if (e.packed_table() == nullptr) {
      Matrix m;
      m.rows = c_.vocab_size;
      m.cols = c_.dim;
      m.data = e.fp32_table();
      return std::unique_ptr<Linear>(std::make_unique<DenseLinear>(std::move(m)));
    }
    const LinearActivation act = runtime_activation(*e.packed_table(), options_);
    LB_ASSIGN_OR_RETURN(std::unique_ptr<PackedLinear> p,
                        PackedLinear::create_shared(e.packed_table(), {}, embedding_label_, act, options_.isa));
    count("", *p);
    return std::unique_ptr<Linear>(std::move(p));
  }

  const ModelSource& src_;
  const ModelConfig& c_;
  const AttachOptions& options_;
  AttachReport* report_;
  std::string embedding_label_;  // "fp16 16.000 bpw" of a packed table, for its tied head
};

}  // namespace

Expected<LlamaModel> build_runtime_model(const ModelSource& source, const AttachOptions& options,
                                         AttachReport* report) {
  if (source.has_stored_tensors()) return RuntimeBuilder(source, options, report).build();
  LB_ASSIGN_OR_RETURN(ModelWeights weights, read_weights(source));
  auto model = LlamaModel::create(source.config(), std::move(weights));
  if (!model.ok()) return model.status().with_context(source.path());
  LB_ASSIGN_OR_RETURN(auto linears, source.quantized_linears());
  LB_RETURN_IF_ERROR(attach_quantized_linears(*model, std::move(linears), options, report).with_context(source.path()));
  return model;
}

}  // namespace lowbit
