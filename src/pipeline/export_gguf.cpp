// `lowbit export --to gguf`. Every tensor is planned before anything is written
// (so every refusal comes before work), then streamed into the file one at a time:
//   vectors (norms, biases, rope_freqs)      F32
//   a llama.cpp block type as stored         the same bytes (lowbit file with a
//                                            GGUF-native recipe, or a GGUF source)
//   lowbit file, other formats               the exact rule of export_gguf_types.h
//                                            (F32 when the rule's block does not
//                                            divide the row: exact, larger); else
//                                            requantized into --type with a warning
//                                            naming the tensor and the error it adds,
//                                            refused under --exact or without --type
//   FP matrices (GGUF F32/F16/BF16, Hugging  --type (default f32), F32 exact
//   Face, llama2.c)
// q/k rows (and biases) of a model whose RoPE pairs differ from the target
// architecture's (a Hugging Face llama: half-split, llama.cpp's llama: adjacent
// pairs) are re-paired as llama.cpp's converter does; rows stay whole, so this
// changes no value.
#include "pipeline/export_gguf.h"

#include <cmath>
#include <cstring>

#include "core/progress.h"
#include "formats/gguf_blocks.h"
#include "io/gguf_writer.h"
#include "pipeline/export_gguf_metadata.h"
#include "pipeline/export_gguf_names.h"
#include "pipeline/export_gguf_types.h"
#include "pipeline/export_source.h"

namespace lowbit {
namespace {

enum class Conversion {
  kVerbatim,    // the stored bytes
  kExact,       // an exact rule (export_gguf_types.h)
  kDequantF32,  // the dequantized values as F32 (exact)
  kRequantize,  // the dequantized values encoded into a type (lossy)
};

const char* conversion_name(Conversion c) {
  switch (c) {
    case Conversion::kVerbatim: return "verbatim";
    case Conversion::kExact: return "exact";
    case Conversion::kDequantF32: return "f32-exact";
    case Conversion::kRequantize: return "requantized";
  }
  return "?";
}

struct TensorPlan {
  const ExportTensor* tensor = nullptr;  // null: a tensor the exporter computes (`values`)
  std::string gguf_name;
  std::vector<int64_t> dims;  // ne0 first
  const GgufOutputType* type = nullptr;
  Conversion how = Conversion::kVerbatim;
  const GgufExactRule* rule = nullptr;  // kExact
  std::string note;                     // why the type is not the one asked for
  int rope_heads = 0;                   // > 0: rows re-paired for RoPE, in heads of head_dim rows
  std::vector<float> values;            // computed tensors: [n]
};

struct Planner {
  const ExportSource& source;
  const ExportOptions& options;
  const GgufArchitecture& arch;
  const GgufOutputType* requested;  // --type, null when not given

  const GgufOutputType& f32() const { return *find_gguf_output_type(static_cast<uint32_t>(GgmlType::F32)); }

  std::string what(const ExportTensor& t) const {
    if (!t.side_tables()) return t.format;
    return t.format + " with " +
           (t.outliers && t.lowrank ? "outliers and a low-rank correction" : t.outliers ? "outliers" : "a low-rank correction");
  }

  Status refuse(const ExportTensor& t, const std::string& why) const {
    return make_error("{}: tensor '{}' ({}): {}", source.path(), t.name, what(t), why);
  }

  // Into `wanted` (or its fallback for the row length); into F32 this is exact.
  void requantize(TensorPlan& p, const GgufOutputType& wanted, int64_t cols) const {
    p.type = &gguf_type_for_row(wanted, cols);
    p.how = p.type->name == "f32" ? Conversion::kDequantF32 : Conversion::kRequantize;
    if (p.type != &wanted) {
      p.note = fmt::format("{} columns are not a multiple of {}'s block of {}: {} instead, as llama.cpp falls back",
                           cols, wanted.name, wanted.block_size, p.type->name);
    }
  }

  Expected<TensorPlan> plan(const ExportTensor& t) const {
    const ModelConfig& c = source.config();
    TensorPlan p;
    p.tensor = &t;
    p.gguf_name = gguf_tensor_name(t.layer, t.role);
    if (p.gguf_name.empty()) return refuse(t, "llama.cpp has no such tensor");
    const bool qk = t.role.starts_with("q_proj") || t.role.starts_with("k_proj");
    const bool qkv = qk || t.role.starts_with("v_proj");
    if (t.role.ends_with(".bias") && !qkv && !arch.linear_biases) {
      return refuse(t, fmt::format("llama.cpp's {} loads no such bias", arch.gguf));
    }
    if (qk && c.rope_layout != arch.rope) p.rope_heads = t.role.starts_with("q_proj") ? c.n_heads : c.n_kv_heads;
    p.dims.assign(t.shape.rbegin(), t.shape.rend());
    if (!t.is_matrix()) {
      p.type = &f32();
      p.how = Conversion::kDequantF32;
      return p;
    }
    const int64_t cols = t.shape[1];
    if (const GgufBlockType* block = find_gguf_block_type(t.format);
        block != nullptr && !t.side_tables() && source.kind() != ExportSourceKind::kFloat) {
      p.type = find_gguf_output_type(block->type_id);
      p.how = Conversion::kVerbatim;
      return p;
    }
    const GgufExactRule* rule = t.side_tables() ? nullptr : find_gguf_exact_rule(t.format);
    if (source.kind() == ExportSourceKind::kLowbit) {
      if (rule != nullptr) {
        p.type = find_gguf_output_type(rule->type_id);
        if (p.type == nullptr) return refuse(t, fmt::format("no encoder for {}", ggml_type_name(rule->type_id)));
        p.how = Conversion::kExact;
        p.rule = rule;
        if (cols % p.type->block_size != 0) {
          p.note = fmt::format("{} columns are not a multiple of {}'s block of {}: f32, which holds the values exactly",
                               cols, p.type->name, p.type->block_size);
          p.type = &f32();
          p.how = Conversion::kDequantF32;
          p.rule = nullptr;
        }
        return p;
      }
      if (requested != nullptr && requested->name == "f32") {
        p.type = &f32();
        p.how = Conversion::kDequantF32;
        return p;
      }
      if (options.exact) return refuse(t, "no GGUF type holds its values exactly (--exact)");
      if (requested == nullptr) {
        return refuse(t, fmt::format("no GGUF type holds its values exactly; pass --type T ({}) to requantize it "
                                     "(each requantized tensor is reported with the error it adds)",
                                     gguf_output_type_names()));
      }
      requantize(p, *requested, cols);
      return p;
    }
    // FP matrices of a GGUF, Hugging Face or llama2.c model: into --type, F32 by default.
    const GgufOutputType& wanted = requested != nullptr ? *requested : f32();
    if (rule != nullptr && rule->type_id == wanted.type_id) {
      p.type = &wanted;
      p.how = Conversion::kExact;
      p.rule = rule;
      return p;
    }
    if (options.exact && wanted.name != "f32") {
      return refuse(t, fmt::format("its values into {} would change (--exact)", wanted.name));
    }
    requantize(p, wanted, cols);
    return p;
  }
};

// q/k rows of `heads` heads: half-split RoPE pairs (i, i + hd/2) to adjacent
// pairs (2i, 2i + 1) when `to_adjacent` (llama.cpp's converter permute()), else back.
std::vector<uint8_t> repair_rope_rows(const std::vector<uint8_t>& bytes, int64_t rows, int heads, bool to_adjacent) {
  const int64_t head_dim = rows / heads, half = head_dim / 2;
  const size_t row_bytes = bytes.size() / static_cast<size_t>(rows);
  std::vector<uint8_t> out(bytes.size());
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t adjacent = h * head_dim + 2 * i + j, split = h * head_dim + j * half + i;
        const int64_t dst = to_adjacent ? adjacent : split, src = to_adjacent ? split : adjacent;
        std::memcpy(out.data() + dst * row_bytes, bytes.data() + src * row_bytes, row_bytes);
      }
    }
  }
  return out;
}

// The FP32 values of a stored tensor: lowbit's dequantization, or the GGUF
// reference decode for a llama.cpp block type.
Expected<std::vector<float>> dequantize_stored(const QuantizedWeight& q) {
  if (const GgufBlockType* block = find_gguf_block_type(q.format); block != nullptr && q.rank == 0 && q.outliers.empty()) {
    return gguf_decode(block->type_id, q.tensor.codes, q.rows(), q.cols());
  }
  std::vector<float> x(static_cast<size_t>(q.rows() * q.cols()));
  LB_RETURN_IF_ERROR(dequantize_weight(q, x.data()));
  return x;
}

std::vector<uint8_t> float_bytes(const std::vector<float>& x) {
  std::vector<uint8_t> out(x.size() * sizeof(float));
  if (!out.empty()) std::memcpy(out.data(), x.data(), out.size());
  return out;
}

// ||x - y|| / ||x|| (0 for two zero tensors).
double relative_error(const std::vector<float>& x, const std::vector<float>& y) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double d = static_cast<double>(x[i]) - y[i];
    num += d * d;
    den += static_cast<double>(x[i]) * x[i];
  }
  if (num == 0.0) return 0.0;
  return den > 0.0 ? std::sqrt(num / den) : INFINITY;
}

// The first element where a and b differ bit for bit, or -1.
int64_t first_bit_difference(const std::vector<float>& a, const std::vector<float>& b) {
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) return static_cast<int64_t>(i);
  }
  return -1;
}

struct TensorResult {
  std::vector<uint8_t> bytes;
  double relative_error = 0.0;
};

Expected<TensorResult> convert(const TensorPlan& p, const ExportSource& source) {
  TensorResult r;
  if (p.tensor == nullptr) {
    r.bytes = float_bytes(p.values);
    return r;
  }
  const ExportTensor& t = *p.tensor;
  LB_ASSIGN_OR_RETURN(QuantizedWeight q, source.read(t));
  const int64_t rows = q.rows(), cols = q.cols();
  switch (p.how) {
    case Conversion::kVerbatim: r.bytes = std::move(q.tensor.codes); break;
    case Conversion::kExact: {
      const BlockFormat* f = nullptr;
      if (q.format != kFp32Storage) {
        LB_ASSIGN_OR_RETURN(f, find_block_format(q.format));
      }
      LB_ASSIGN_OR_RETURN(r.bytes, p.rule->convert(f, q.tensor));
      // The rule's promise, checked: the file decodes to lowbit's values bit for bit.
      LB_ASSIGN_OR_RETURN(std::vector<float> expected, dequantize_stored(q));
      LB_ASSIGN_OR_RETURN(std::vector<float> written, gguf_decode(p.type->type_id, r.bytes, rows, cols));
      if (const int64_t i = first_bit_difference(expected, written); i >= 0) {
        return make_error("{}: tensor '{}': {} -> {} changed element {} ({} -> {}); not exported", source.path(),
                          t.name, q.format, p.type->name, i, expected[i], written[i]);
      }
      break;
    }
    case Conversion::kDequantF32: {
      LB_ASSIGN_OR_RETURN(std::vector<float> x, dequantize_stored(q));
      r.bytes = float_bytes(x);
      break;
    }
    case Conversion::kRequantize: {
      LB_ASSIGN_OR_RETURN(std::vector<float> x, dequantize_stored(q));
      auto encoded = gguf_encode(*p.type, x.data(), rows, cols);
      if (!encoded.ok()) return encoded.status().with_context(fmt::format("{}: tensor '{}'", source.path(), t.name));
      r.bytes = std::move(encoded).value();
      LB_ASSIGN_OR_RETURN(std::vector<float> y, gguf_decode(p.type->type_id, r.bytes, rows, cols));
      r.relative_error = relative_error(x, y);
      break;
    }
  }
  if (p.rope_heads > 0) {
    r.bytes = repair_rope_rows(r.bytes, t.is_matrix() ? rows : cols, p.rope_heads,
                               source.config().rope_layout == RopeLayout::kHalfSplit);
  }
  return r;
}

// general.file_type: the type holding most elements of the decoder's matrices.
GgufFileFacts file_facts(const std::vector<TensorPlan>& plans) {
  std::map<uint32_t, uint64_t> elements;
  GgufFileFacts facts;
  for (const TensorPlan& p : plans) {
    const uint32_t id = p.type->type_id;
    const bool is_float = id == static_cast<uint32_t>(GgmlType::F32) || id == static_cast<uint32_t>(GgmlType::F16) ||
                          id == static_cast<uint32_t>(GgmlType::BF16);
    facts.quantized = facts.quantized || !is_float;
    if (p.tensor == nullptr || !p.tensor->is_matrix() || p.tensor->layer < 0) continue;
    elements[id] += static_cast<uint64_t>(p.dims[0] * p.dims[1]);
  }
  uint32_t most = static_cast<uint32_t>(GgmlType::F32);
  for (const auto& [id, n] : elements) {
    if (n > elements[most]) most = id;
  }
  facts.llama_ftype = find_gguf_output_type(most)->llama_ftype;
  return facts;
}

void log(const ExportOptions& o, const std::string& line) {
  if (o.log) o.log(line);
}

}  // namespace

Status check_gguf_export_options(const ExportOptions& o) {
  if (!o.type.empty() && find_gguf_output_type(o.type) == nullptr) {
    return make_error("--type {}: not a GGUF type lowbit writes ({})", o.type, gguf_output_type_names());
  }
  return Status::ok_status();
}

Expected<ExportReport> export_gguf(const ExportOptions& o) {
  LB_RETURN_IF_ERROR(check_gguf_export_options(o));
  LB_ASSIGN_OR_RETURN(std::unique_ptr<ExportSource> source, ExportSource::open(o.model_path));
  const ModelConfig& c = source->config();
  LB_ASSIGN_OR_RETURN(const GgufArchitecture* arch, find_gguf_architecture(c, source->path()));
  LB_ASSIGN_OR_RETURN(std::vector<std::string> transforms, source->runtime_transforms());
  if (!transforms.empty()) {
    return make_error("{}: llama.cpp cannot run {}; export a model without it", source->path(),
                      fmt::join(transforms, ", nor "));
  }

  const Planner planner{*source, o, *arch, o.type.empty() ? nullptr : find_gguf_output_type(o.type)};
  std::vector<TensorPlan> plans;
  bool has_rope_freqs = false;
  for (const ExportTensor& t : source->tensors()) {
    LB_ASSIGN_OR_RETURN(TensorPlan p, planner.plan(t));
    has_rope_freqs = has_rope_freqs || t.role == "rope_freqs";
    plans.push_back(std::move(p));
  }
  if (c.rope_scaling.llama3 && !has_rope_freqs) {
    TensorPlan p;
    p.gguf_name = gguf_tensor_name(-1, "rope_freqs");
    p.values = llama3_rope_freq_factors(c);
    p.dims = {static_cast<int64_t>(p.values.size())};
    p.type = find_gguf_output_type(static_cast<uint32_t>(GgmlType::F32));
    p.how = Conversion::kDequantF32;
    plans.push_back(std::move(p));
  }
  GgufWriter layout;
  set_gguf_model_metadata(layout, *source, *arch, file_facts(plans));
  LB_RETURN_IF_ERROR(set_gguf_tokenizer_metadata(layout, *source, o.tokenizer_path));
  for (const TensorPlan& p : plans) LB_RETURN_IF_ERROR(layout.declare_tensor(p.gguf_name, p.dims, p.type->type_id));

  ExportReport report;
  report.output_path = o.output_path;
  nlohmann::json rows = nlohmann::json::array();
  const bool warn_requantized = source->kind() == ExportSourceKind::kLowbit;
  int fallbacks = 0;
  LB_ASSIGN_OR_RETURN(GgufStreamWriter writer, GgufStreamWriter::create(o.output_path, layout));
  // Weighted by elements: the embedding and the FFN matrices dominate the time.
  auto elements = [](const TensorPlan& p) {
    int64_t n = 1;
    for (auto d : p.dims) n *= static_cast<int64_t>(d);
    return n;
  };
  int64_t total_elements = 0, elements_done = 0;
  for (const TensorPlan& p : plans) total_elements += elements(p);
  ProgressBar progress("export", total_elements, o.progress, ProgressUnits::kPercent);
  for (const TensorPlan& p : plans) {
    LB_ASSIGN_OR_RETURN(TensorResult r, convert(p, *source));
    LB_RETURN_IF_ERROR(writer.write_tensor(p.gguf_name, r.bytes));
    const std::string from = p.tensor != nullptr ? p.tensor->format : "computed";
    const std::string name = p.tensor != nullptr ? p.tensor->name : "rope_freqs (Llama-3 scaling)";
    ++report.tensors;
    (p.how == Conversion::kRequantize ? report.requantized : report.converted_exactly) += 1;
    fallbacks += p.note.empty() ? 0 : 1;
    if (p.how == Conversion::kRequantize && warn_requantized) {
      log(o, fmt::format("lowbit: warning: tensor '{}' ({}): no GGUF type holds its values; requantized into {}, "
                         "relative error {:.3e}{}",
                         name, from, p.type->name, r.relative_error, p.note.empty() ? "" : " (" + p.note + ")"));
    } else if (!p.note.empty() && warn_requantized) {
      log(o, fmt::format("lowbit: note: tensor '{}' ({}): {}", name, from, p.note));
    } else if (o.verbose) {
      log(o, fmt::format("  {:<28} {:<16} -> {:<6} {}{}{}", p.gguf_name, from, p.type->name, conversion_name(p.how),
                         p.how == Conversion::kRequantize ? fmt::format(", relative error {:.3e}", r.relative_error)
                                                          : "",
                         p.note.empty() ? "" : " (" + p.note + ")"));
    }
    nlohmann::json row = {{"name", name},           {"gguf_name", p.gguf_name},
                          {"format", from},         {"type", p.type->name},
                          {"conversion", conversion_name(p.how)}, {"rope_repaired", p.rope_heads > 0}};
    if (p.how == Conversion::kRequantize) row["relative_error"] = r.relative_error;
    if (!p.note.empty()) row["note"] = p.note;
    rows.push_back(std::move(row));
    elements_done += elements(p);
    progress.update(elements_done, p.gguf_name);
  }
  progress.finish();
  LB_RETURN_IF_ERROR(writer.finish());
  report.output_bytes = writer.bytes_written();
  if (fallbacks > 0 && !warn_requantized && !o.verbose) {
    log(o, fmt::format("lowbit: note: {} tensors took another type for their row length (--verbose lists them)",
                       fallbacks));
  }
  report.details = {{"architecture", arch->gguf}, {"type", o.type}, {"exact", o.exact}, {"tensor_plan", rows}};
  return report;
}

}  // namespace lowbit
