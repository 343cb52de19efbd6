#include "pipeline/hf_export.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>

#include <nlohmann/json.hpp>

#include "core/half.h"
#include "core/interrupt_cleanup.h"
#include "core/progress.h"
#include "core/mapped_file.h"
#include "io/compressed_tensors.h"
#include "io/gguf.h"
#include "io/safetensors_writer.h"
#include "io/untrusted_json.h"
#include "model/lowbit_file.h"
#include "pipeline/ct_linear.h"
#include "pipeline/export_source.h"
#include "tokenizer/hf_tokenizer_writer.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;
using Dt = SafetensorsDtype;

// Files of a Hugging Face folder that describe the tokenizer and generation;
// copied as they are when the model came from such a folder.
constexpr const char* kTokenizerFiles[] = {"tokenizer.json",          "tokenizer_config.json", "special_tokens_map.json",
                                           "tokenizer.model",         "added_tokens.json",     "vocab.json",
                                           "merges.txt",              "chat_template.jinja",   "chat_template.json",
                                           "generation_config.json"};

struct HfArchitectureName {
  const char* model_type;
  const char* class_name;
};
constexpr HfArchitectureName kClassNames[] = {
    {"llama", "LlamaForCausalLM"}, {"mistral", "MistralForCausalLM"}, {"qwen2", "Qwen2ForCausalLM"}};

// One linear of a decoder layer: lowbit suffix, HF module path, shape, RoPE rows.
struct LinearSlot {
  const char* suffix;  // "q_proj"
  const char* module;  // "self_attn.q_proj"
  int64_t rows, cols;
  int rope_heads;  // > 0: q/k rows (heads of head_dim) that take the half-split order
};

std::vector<LinearSlot> layer_linears(const ModelConfig& c) {
  return {{"q_proj", "self_attn.q_proj", c.q_dim(), c.dim, c.n_heads},
          {"k_proj", "self_attn.k_proj", c.kv_dim(), c.dim, c.n_kv_heads},
          {"v_proj", "self_attn.v_proj", c.kv_dim(), c.dim, 0},
          {"o_proj", "self_attn.o_proj", c.dim, c.q_dim(), 0},
          {"gate_proj", "mlp.gate_proj", c.ffn_dim, c.dim, 0},
          {"up_proj", "mlp.up_proj", c.ffn_dim, c.dim, 0},
          {"down_proj", "mlp.down_proj", c.dim, c.ffn_dim, 0}};
}

// The output folder, written beside its final name and renamed into place.
class StagingDir {
 public:
  static Expected<StagingDir> create(const std::string& out_dir, bool force) {
    if (out_dir.empty()) return make_error("no output folder given");
    StagingDir d;
    d.final_ = fs::path(out_dir);
    std::error_code ec;
    if (fs::exists(d.final_, ec) && !force) {
      return make_error("{}: already exists (use --force to replace it)", out_dir);
    }
    if (fs::exists(d.final_, ec) && !fs::is_directory(d.final_, ec)) {
      return make_error("{}: exists and is not a folder; not replacing it", out_dir);
    }
    const fs::path parent = d.final_.has_parent_path() ? d.final_.parent_path() : fs::path(".");
    if (!fs::is_directory(parent, ec)) return make_error("{}: parent folder {} does not exist", out_dir, parent.string());
    d.tmp_ = fs::path(out_dir + fmt::format(".tmp-{}", ::getpid()));
    fs::remove_all(d.tmp_, ec);
    d.on_interrupt_.emplace_back(d.tmp_.string());
    if (!fs::create_directory(d.tmp_, ec)) return make_error("{}: cannot create: {}", d.tmp_.string(), ec.message());
    return d;
  }
  StagingDir(StagingDir&& o) noexcept
      : final_(std::move(o.final_)), tmp_(std::move(o.tmp_)), on_interrupt_(std::move(o.on_interrupt_)) {
    o.tmp_.clear();
  }
  StagingDir(const StagingDir&) = delete;
  StagingDir& operator=(const StagingDir&) = delete;
  StagingDir& operator=(StagingDir&&) = delete;
  ~StagingDir() {
    std::error_code ec;
    if (!tmp_.empty()) fs::remove_all(tmp_, ec);
  }

  // A file in the staging folder, removed with it on SIGINT/SIGTERM (core/interrupt_cleanup.h).
  std::string file(const std::string& name) const {
    const std::string path = (tmp_ / name).string();
    on_interrupt_.emplace_back(path);
    return path;
  }

  // Replaces the final folder (moved aside first, removed once the new one is in place).
  Status commit() {
    std::error_code ec;
    fs::path old;
    if (fs::exists(final_, ec)) {
      old = fs::path(final_.string() + fmt::format(".old-{}", ::getpid()));
      fs::remove_all(old, ec);
      fs::rename(final_, old, ec);
      if (ec) return make_error("{}: cannot move the existing folder aside: {}", final_.string(), ec.message());
    }
    fs::rename(tmp_, final_, ec);
    if (ec) {
      std::error_code ignored;
      if (!old.empty()) fs::rename(old, final_, ignored);
      return make_error("{}: cannot rename from {}: {}", final_.string(), tmp_.string(), ec.message());
    }
    tmp_.clear();
    on_interrupt_.clear();
    if (!old.empty()) fs::remove_all(old, ec);
    return Status::ok_status();
  }

 private:
  StagingDir() = default;
  fs::path final_;
  fs::path tmp_;
  // tmp_ first, then its files; mutable: handing out a file name registers it.
  mutable std::vector<RemoveOnInterrupt> on_interrupt_;
};

// FP32 values as `dtype` little-endian bytes; F16 overflow is an error naming the tensor.
Expected<std::vector<uint8_t>> dense_bytes(const float* v, size_t n, Dt dtype, const std::string& tensor) {
  std::vector<uint8_t> out(n * safetensors_dtype_info(dtype).bytes);
  if (dtype == Dt::kF32) {
    if (n > 0) std::memcpy(out.data(), v, n * 4);
    return out;
  }
  for (size_t i = 0; i < n; ++i) {
    const uint16_t h = dtype == Dt::kBF16 ? float_to_bf16(v[i]) : float_to_fp16(v[i]);
    if (dtype == Dt::kF16 && std::isinf(fp16_to_float(h)) && std::isfinite(v[i])) {
      return make_error("tensor '{}': value {} at {} overflows F16 (use --dtype bf16 or f32)", tensor, v[i], i);
    }
    std::memcpy(out.data() + 2 * i, &h, 2);
  }
  return out;
}

// What the export needs to know about the source besides its tensors.
struct SourceFacts {
  std::string origin_dir;  // the Hugging Face folder the model came from, "" if none
  std::map<std::string, std::string> stored_formats;  // lowbit source: tensor name -> block format or "fp32"
};

// Refuses what a Hugging Face folder cannot express (ExportSource::runtime_transforms).
Expected<SourceFacts> check_source(const ExportSource& source) {
  LB_ASSIGN_OR_RETURN(std::vector<std::string> transforms, source.runtime_transforms());
  if (!transforms.empty()) {
    return make_error("{}: the model needs {}, which a Hugging Face folder cannot express", source.path(),
                      fmt::join(transforms, "; "));
  }
  SourceFacts f;
  const FileSummary& s = source.model().summary();
  if (s.format == "huggingface") f.origin_dir = s.path;
  if (source.kind() == ExportSourceKind::kLowbit) {
    LB_ASSIGN_OR_RETURN(LowbitModelFile file, LowbitModelFile::open(s.path));
    const nlohmann::json& src = file.info().source;
    if (src.is_object() && src.value("format", "") == "huggingface") {
      const std::string origin = src.value("path", "");
      std::error_code ec;
      if (!origin.empty() && fs::is_regular_file(fs::path(origin) / "config.json", ec)) f.origin_dir = origin;
    }
    // Only lowbit's formats map onto compressed-tensors; GGUF block types are read dequantized.
    for (const ExportTensor& t : source.tensors()) f.stored_formats[t.name] = t.format;
  }
  return f;
}

// How one linear is written.
struct LinearPlan {
  std::string name;    // lowbit name, "layers.3.q_proj" or "lm_head"
  std::string prefix;  // HF module, "model.layers.3.self_attn.q_proj"
  int64_t rows = 0, cols = 0;
  int rope_heads = 0;
  std::optional<CtScheme> scheme;  // quantized (compressed-tensors), else dense
};

// Dense unless the export is compressed-tensors and the source stores the linear
// in a scaled format.
Expected<LinearPlan> plan_linear(const SourceFacts& facts, bool ct, std::string name, std::string prefix,
                                 int64_t rows, int64_t cols, int rope_heads) {
  LinearPlan p{std::move(name), std::move(prefix), rows, cols, rope_heads, std::nullopt};
  if (!ct) return p;
  auto it = facts.stored_formats.find(p.name);
  if (it == facts.stored_formats.end() || it->second == kFp32Storage) return p;
  LB_ASSIGN_OR_RETURN(const BlockFormat* f, find_block_format(it->second));
  if (f->layout.granularity == ScaleGranularity::kNone) return p;  // fp16 / bf16 storage: dense
  LB_ASSIGN_OR_RETURN(CtScheme s, ct_scheme_for_format(*f, rows, cols, p.name));
  p.scheme = std::move(s);
  return p;
}

// config_groups: one per distinct (format, weight args); ["Linear"] when a single
// scheme covers every quantized linear, else the module names. Dense linears are
// listed in "ignore".
CtConfig make_ct_config(const std::vector<LinearPlan>& linears) {
  CtConfig c;
  for (const LinearPlan& p : linears) {
    if (!p.scheme) {
      c.ignore.push_back(p.prefix);
      continue;
    }
    auto it = std::find_if(c.groups.begin(), c.groups.end(), [&](const auto& g) {
      return g.second.format == p.scheme->format && g.second.weights == p.scheme->weights;
    });
    if (it == c.groups.end()) {
      CtScheme s = *p.scheme;
      s.targets.clear();
      c.groups.emplace_back(fmt::format("group_{}", c.groups.size()), std::move(s));
      it = c.groups.end() - 1;
    }
    it->second.targets.push_back(p.prefix);
  }
  if (c.groups.size() == 1) c.groups[0].second.targets = {"Linear"};
  c.format = c.groups.empty() ? "dense" : c.groups[0].second.format;
  for (const auto& g : c.groups) {
    if (g.second.format != c.format) c.format = "mixed-precision";
  }
  return c;
}

const char* torch_dtype_name(Dt dtype) {
  return dtype == Dt::kBF16 ? "bfloat16" : dtype == Dt::kF16 ? "float16" : "float32";
}

// config.json: the origin folder's config (when there is one) with the keys
// lowbit's config determines written over it; its max_position_embeddings (lowbit
// caps the context at a sliding window) and its rms_norm_eps text (when it reads
// back to the same float) are kept.
Expected<ojson> make_config(const ModelConfig& c, const SourceFacts& facts, Dt dtype, const Tokenizer* tokenizer,
                            const CtConfig* ct) {
  LB_ASSIGN_OR_RETURN(ojson keys, hf_config_json(c, dtype));
  ojson j = ojson::object();
  if (!facts.origin_dir.empty()) {
    const std::string path = (fs::path(facts.origin_dir) / "config.json").string();
    LB_ASSIGN_OR_RETURN(std::string text, read_text_file(path));
    LB_ASSIGN_OR_RETURN(j, parse_untrusted_ordered_json(text, path));
    if (!j.is_object()) return make_error("{}: not a JSON object", path);
    j.erase("quantization_config");
  }
  const bool keep_eps = j.contains("rms_norm_eps") && j["rms_norm_eps"].is_number() &&
                        static_cast<float>(j["rms_norm_eps"].get<double>()) == c.norm_eps;
  const bool keep_context = j.contains("max_position_embeddings");
  for (auto& [k, v] : keys.items()) {
    if ((k == "rms_norm_eps" && keep_eps) || (k == "max_position_embeddings" && keep_context)) continue;
    j[k] = v;
  }
  if (tokenizer != nullptr) {
    if (!j.contains("bos_token_id") && tokenizer->bos_id() >= 0) j["bos_token_id"] = tokenizer->bos_id();
    if (!j.contains("eos_token_id") && tokenizer->eos_id() >= 0) j["eos_token_id"] = tokenizer->eos_id();
  }
  if (ct != nullptr) j["quantization_config"] = ct_config_to_json(*ct);
  return j;
}

Expected<HfTokenizerFiles> gguf_tokenizer_files(const ExportSource& source) {
  const GgufFile* header = source.gguf_header();
  if (header == nullptr || header->find("tokenizer.ggml.model") == nullptr) {
    return make_error("{}: the model carries no GGUF vocabulary to convert to tokenizer.json", source.path());
  }
  return hf_tokenizer_files_from_gguf(*header);
}

// The tokenizer and generation files: copied from the origin folder, or
// generation_config.json from the tokenizer's special ids.
Status write_side_files(const SourceFacts& facts, const std::string& tokenizer_dir, const ExportSource& source,
                        const Tokenizer* tokenizer, const StagingDir& dir, HfExportReport* report) {
  bool generation = false, tokenizer_file = false;
  const std::string& from_dir = tokenizer_dir.empty() ? facts.origin_dir : tokenizer_dir;
  if (!from_dir.empty()) {
    for (const char* name : kTokenizerFiles) {
      const fs::path from = fs::path(from_dir) / name;
      std::error_code ec;
      if (!fs::is_regular_file(from, ec)) continue;
      fs::copy_file(from, dir.file(name), ec);
      if (ec) return make_error("{}: cannot copy into the export: {}", from.string(), ec.message());
      report->files.push_back(name);
      generation |= std::string(name) == "generation_config.json";
      tokenizer_file |= std::string(name) == "tokenizer.json" || std::string(name) == "tokenizer.model";
    }
  }
  if (!tokenizer_file && !from_dir.empty()) {
    report->warnings.push_back(fmt::format("no tokenizer files written: {} has no tokenizer.json or tokenizer.model",
                                           from_dir));
  } else if (!tokenizer_file) {
    // Written from the GGUF vocabulary the model carries (a GGUF file, or a lowbit
    // file that copied its tokenizer.* keys), where lowbit converts it.
    auto files = gguf_tokenizer_files(source);
    if (files.ok()) {
      LB_RETURN_IF_ERROR(write_file_atomic(dir.file("tokenizer.json"), files->tokenizer_json + "\n"));
      LB_RETURN_IF_ERROR(write_file_atomic(dir.file("tokenizer_config.json"), files->tokenizer_config_json + "\n"));
      report->files.push_back("tokenizer.json");
      report->files.push_back("tokenizer_config.json");
    } else {
      report->warnings.push_back(fmt::format(
          "no tokenizer files written ({}); copy tokenizer.json and tokenizer_config.json of the original model into "
          "the folder, or pass --tokenizer ORIGINAL/tokenizer.json",
          files.status().message()));
    }
  }
  if (!generation && tokenizer != nullptr) {
    ojson g = ojson::object();
    if (tokenizer->bos_id() >= 0) g["bos_token_id"] = tokenizer->bos_id();
    if (tokenizer->eos_id() >= 0) g["eos_token_id"] = tokenizer->eos_id();
    LB_RETURN_IF_ERROR(write_file_atomic(dir.file("generation_config.json"), dump_json(g, 2) + "\n"));
    report->files.push_back("generation_config.json");
  }
  return Status::ok_status();
}

// Tensors to write, each made by a producer that makes a whole group (a layer) at
// once; the writer keeps a group's bytes only until they are appended.
using Produced = std::map<std::string, std::vector<uint8_t>>;
using Producer = std::function<Status(Produced*)>;

struct TensorList {
  std::vector<SafetensorsEntry> entries;
  std::vector<size_t> producer_of;  // per entry
  std::vector<Producer> producers;

  void add(SafetensorsEntry e) {
    entries.push_back(std::move(e));
    producer_of.push_back(producers.size());  // the producer added next
  }
  void close_group(Producer p) { producers.push_back(std::move(p)); }
};

Status write_tensors(const TensorList& list, const StagingDir& dir, uint64_t max_shard_bytes, bool show_progress,
                     HfExportReport* report) {
  LB_ASSIGN_OR_RETURN(auto shards, plan_safetensors_shards(list.entries, max_shard_bytes));
  // Weighted by bytes: the embedding and the FFN matrices dominate the time.
  int64_t total_bytes = 0, bytes_done = 0;
  for (const SafetensorsEntry& e : list.entries) {
    LB_ASSIGN_OR_RETURN(uint64_t bytes, e.byte_size());
    total_bytes += static_cast<int64_t>(bytes);
  }
  ProgressBar progress("export", total_bytes, show_progress, ProgressUnits::kPercent);
  Produced cache;
  ojson weight_map = ojson::object();
  for (size_t s = 0; s < shards.size(); ++s) {
    const std::string name = safetensors_shard_name(s, shards.size());
    std::vector<SafetensorsEntry> entries;
    for (size_t i : shards[s]) entries.push_back(list.entries[i]);
    LB_ASSIGN_OR_RETURN(SafetensorsStreamWriter w,
                        SafetensorsStreamWriter::create(dir.file(name), std::move(entries), {{"format", "pt"}}));
    for (size_t i : shards[s]) {
      const std::string& tensor = list.entries[i].name;
      if (cache.find(tensor) == cache.end()) {
        Produced made;
        LB_RETURN_IF_ERROR(list.producers[list.producer_of[i]](&made));
        for (auto& [k, v] : made) cache[k] = std::move(v);
      }
      auto it = cache.find(tensor);
      if (it == cache.end()) return make_error("tensor '{}': not produced (internal error)", tensor);
      LB_RETURN_IF_ERROR(w.append(tensor, it->second));
      bytes_done += static_cast<int64_t>(it->second.size());
      progress.update(bytes_done, tensor);
      cache.erase(it);
      weight_map[tensor] = name;
    }
    LB_RETURN_IF_ERROR(w.finish());
    report->tensor_bytes += w.data_bytes();
    report->files.push_back(name);
  }
  if (!cache.empty()) return make_error("tensor '{}': produced but not planned (internal error)", cache.begin()->first);
  if (shards.size() > 1) {
    ojson index = {{"metadata", {{"total_size", report->tensor_bytes}}}, {"weight_map", std::move(weight_map)}};
    LB_RETURN_IF_ERROR(write_file_atomic(dir.file("model.safetensors.index.json"), dump_json(index, 2) + "\n"));
    report->files.push_back("model.safetensors.index.json");
  }
  return Status::ok_status();
}

Expected<HfExportReport> export_folder(const ExportSource& exported, const HfExportOptions& options, bool ct) {
  const ModelSource& source = exported.model();
  if (options.dtype != Dt::kBF16 && options.dtype != Dt::kF16 && options.dtype != Dt::kF32) {
    return make_error("--dtype {}: dense tensors are written as bf16, f16 or f32",
                      safetensors_dtype_info(options.dtype).short_name);
  }
  const ModelConfig& c = source.config();
  LB_ASSIGN_OR_RETURN(SourceFacts facts, check_source(exported));
  LB_ASSIGN_OR_RETURN(std::vector<float> rope_factors, source.rope_freq_factors());
  if (!rope_factors.empty() && !c.rope_scaling.llama3) {
    return make_error("{}: rope_freqs factors without llama3 rope_scaling cannot be expressed in config.json",
                      source.path());
  }

  // Plan every linear first: an unsupported format is refused before anything is written.
  const bool permute = c.rope_layout == RopeLayout::kAdjacentPairs;
  std::vector<LinearPlan> linears;
  for (int i = 0; i < c.n_layers; ++i) {
    for (const LinearSlot& s : layer_linears(c)) {
      LB_ASSIGN_OR_RETURN(LinearPlan p, plan_linear(facts, ct, fmt::format("layers.{}.{}", i, s.suffix),
                                                    fmt::format("model.layers.{}.{}", i, s.module), s.rows, s.cols,
                                                    permute ? s.rope_heads : 0));
      linears.push_back(std::move(p));
    }
  }
  if (!c.tied_embeddings) {
    LB_ASSIGN_OR_RETURN(LinearPlan p, plan_linear(facts, ct, "lm_head", "lm_head", c.vocab_size, c.dim, 0));
    linears.push_back(std::move(p));
  }
  std::optional<CtConfig> ct_config;
  HfExportReport report;
  if (ct) {
    ct_config = make_ct_config(linears);
    if (ct_config->groups.empty()) {
      return make_error("{}: no linear is stored in a lowbit quantized format (GGUF block types are read "
                        "dequantized), so there is nothing to write as compressed-tensors; quantize it with "
                        "`lowbit quantize` first, or export --to safetensors",
                        source.path());
    }
  }
  for (const LinearPlan& p : linears) (p.scheme ? report.quantized_linears : report.dense_linears) += 1;

  auto tok = source.tokenizer();
  std::unique_ptr<Tokenizer> tokenizer;
  if (tok.ok()) {
    tokenizer = std::move(tok).value();
  } else {
    report.warnings.push_back(fmt::format("tokenizer not read ({}): no BOS/EOS ids written", tok.status().message()));
  }
  LB_ASSIGN_OR_RETURN(ojson config, make_config(c, facts, options.dtype, tokenizer.get(),
                                                ct_config ? &*ct_config : nullptr));

  // Tensor list and producers.
  const Dt dt = options.dtype;
  TensorList list;
  auto dense = [&](Produced* out, const std::string& name, const std::vector<float>& v) -> Status {
    LB_ASSIGN_OR_RETURN((*out)[name], dense_bytes(v.data(), v.size(), dt, name));
    return Status::ok_status();
  };
  // A linear into `out`: compressed-tensors tensors from its stored form, or dense.
  auto linear = [&, ct_exact = options.exact](Produced* out, const LinearPlan& p, const Matrix& m) -> Status {
    const std::vector<int64_t> order = p.rope_heads > 0 ? half_split_row_order(p.rope_heads, c.head_dim)
                                                        : std::vector<int64_t>();
    if (!m.bias.empty()) LB_RETURN_IF_ERROR(dense(out, p.prefix + ".bias", reorder_rows(m.bias, 1, order)));
    if (!p.scheme) return dense(out, p.prefix + ".weight", reorder_rows(m.data, m.cols, order));
    LB_ASSIGN_OR_RETURN(std::optional<QuantizedWeight> q, source.stored_tensor(p.name, {p.rows, p.cols}));
    if (!q) return make_error("{}: tensor '{}' is not stored (internal error)", source.path(), p.name);
    CtConvertOptions o;
    o.exact = ct_exact;
    o.row_order = order;
    LB_ASSIGN_OR_RETURN(CtConvertedLinear converted, ct_convert_linear(*q, *p.scheme, p.prefix, p.name, o));
    if (!converted.exact) {
      ++report.requantized_linears;
      report.warnings.push_back(fmt::format(
          "tensor '{}' ({}): {}; added error RMS {:.3g} ({:.3g}% of the weight RMS {:.3g}), max {:.3g}", p.name,
          q->format, converted.note, converted.rms_error,
          converted.weight_rms > 0 ? 100.0 * converted.rms_error / converted.weight_rms : 0.0, converted.weight_rms,
          converted.max_error));
    }
    for (size_t k = 0; k < converted.entries.size(); ++k) (*out)[converted.entries[k].name] = std::move(converted.bytes[k]);
    return Status::ok_status();
  };
  auto add_linear_entries = [&](const LinearPlan& p, bool bias) {
    if (bias) list.add({p.prefix + ".bias", dt, {p.rows}});
    if (p.scheme) {
      for (SafetensorsEntry& e : ct_module_entries(*p.scheme, p.prefix, p.rows, p.cols)) list.add(std::move(e));
    } else {
      list.add({p.prefix + ".weight", dt, {p.rows, p.cols}});
    }
  };

  list.add({"model.embed_tokens.weight", dt, {c.vocab_size, c.dim}});
  list.close_group([&](Produced* out) -> Status {
    LB_ASSIGN_OR_RETURN(std::vector<float> v, source.token_embedding());
    return dense(out, "model.embed_tokens.weight", v);
  });
  for (int i = 0; i < c.n_layers; ++i) {
    const std::string p = fmt::format("model.layers.{}.", i);
    const LinearPlan* plans = &linears[static_cast<size_t>(i) * 7];
    list.add({p + "input_layernorm.weight", dt, {c.dim}});
    for (int k = 0; k < 7; ++k) add_linear_entries(plans[k], c.qkv_bias && k < 3);
    list.add({p + "post_attention_layernorm.weight", dt, {c.dim}});
    list.close_group([&, i, p, plans](Produced* out) -> Status {
      LB_ASSIGN_OR_RETURN(LayerWeights l, source.layer(i));  // norm biases were refused by check_source
      LB_RETURN_IF_ERROR(dense(out, p + "input_layernorm.weight", l.attn_norm));
      LB_RETURN_IF_ERROR(dense(out, p + "post_attention_layernorm.weight", l.ffn_norm));
      const Matrix* m[7] = {&l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.gate_proj, &l.up_proj, &l.down_proj};
      for (int k = 0; k < 7; ++k) LB_RETURN_IF_ERROR(linear(out, plans[k], *m[k]));
      return Status::ok_status();
    });
  }
  list.add({"model.norm.weight", dt, {c.dim}});
  if (!c.tied_embeddings) add_linear_entries(linears.back(), false);
  list.close_group([&](Produced* out) -> Status {
    LB_ASSIGN_OR_RETURN(std::vector<float> norm, source.output_norm());
    LB_RETURN_IF_ERROR(dense(out, "model.norm.weight", norm));
    if (c.tied_embeddings) return Status::ok_status();
    LB_ASSIGN_OR_RETURN(Matrix head, source.lm_head());
    return linear(out, linears.back(), head);
  });

  LB_ASSIGN_OR_RETURN(StagingDir dir, StagingDir::create(options.out_dir, options.force));
  LB_RETURN_IF_ERROR(write_tensors(list, dir, options.max_shard_bytes, options.progress, &report));
  LB_RETURN_IF_ERROR(write_file_atomic(dir.file("config.json"), dump_json(config, 2) + "\n"));
  report.files.insert(report.files.begin(), "config.json");
  LB_RETURN_IF_ERROR(write_side_files(facts, options.tokenizer_dir, exported, tokenizer.get(), dir, &report));
  for (const std::string& f : report.files) {
    std::error_code ec;
    report.folder_bytes += fs::file_size(dir.file(f), ec);
  }
  report.tensors = list.entries.size();
  LB_RETURN_IF_ERROR(dir.commit());
  return report;
}

Expected<Dt> dense_dtype(const std::string& type) {
  if (type.empty() || type == "bf16") return Dt::kBF16;
  if (type == "f16" || type == "fp16") return Dt::kF16;
  if (type == "f32" || type == "fp32") return Dt::kF32;
  return make_error("--type {}: a Hugging Face folder stores dense tensors as bf16, f16 or f32", type);
}

Expected<ExportReport> run_hf_target(const ExportOptions& o, bool ct) {
  HfExportOptions h;
  h.out_dir = o.output_path;
  LB_ASSIGN_OR_RETURN(h.dtype, dense_dtype(o.type));
  h.force = o.force;
  h.exact = o.exact;
  h.progress = o.progress;
  if (!o.tokenizer_path.empty()) h.tokenizer_dir = fs::absolute(fs::path(o.tokenizer_path)).parent_path().string();
  LB_ASSIGN_OR_RETURN(std::unique_ptr<ExportSource> source, ExportSource::open(o.model_path));
  LB_ASSIGN_OR_RETURN(HfExportReport r, ct ? export_compressed_tensors(*source, h) : export_safetensors(*source, h));
  if (o.log) {
    for (const std::string& w : r.warnings) o.log("warning: " + w);
  }
  ExportReport out;
  out.output_path = o.output_path;
  out.output_bytes = r.folder_bytes;
  out.tensors = r.tensors;
  out.converted_exactly = static_cast<uint64_t>(r.quantized_linears - r.requantized_linears);
  out.requantized = static_cast<uint64_t>(r.requantized_linears);
  out.details["files"] = r.files;
  out.details["warnings"] = r.warnings;
  out.details["dtype"] = safetensors_dtype_info(h.dtype).short_name;
  out.details["quantized_linears"] = r.quantized_linears;
  out.details["dense_linears"] = r.dense_linears;
  return out;
}

}  // namespace

Expected<ojson> hf_config_json(const ModelConfig& c, Dt dtype) {
  const char* class_name = nullptr;
  for (const auto& a : kClassNames) {
    if (c.architecture == a.model_type) class_name = a.class_name;
  }
  if (class_name == nullptr) return make_error("no Hugging Face class for architecture '{}'", c.architecture);
  if (c.qkv_bias != (c.architecture == "qwen2")) {
    return make_error("architecture '{}' with q/k/v biases {} has no Hugging Face form", c.architecture,
                      c.qkv_bias ? "present" : "absent");
  }
  ojson j;
  j["architectures"] = {class_name};
  j["model_type"] = c.architecture;
  j["hidden_size"] = c.dim;
  j["intermediate_size"] = c.ffn_dim;
  j["num_hidden_layers"] = c.n_layers;
  j["num_attention_heads"] = c.n_heads;
  j["num_key_value_heads"] = c.n_kv_heads;
  j["head_dim"] = c.head_dim;
  j["hidden_act"] = "silu";
  j["max_position_embeddings"] = c.max_seq_len;
  j["rms_norm_eps"] = std::stod(fmt::format("{}", c.norm_eps));  // shortest text of the float: 1e-05
  j["rope_theta"] = c.rope_theta;
  if (c.rope_scaling.llama3) {
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", c.rope_scaling.factor},
                         {"low_freq_factor", c.rope_scaling.low_freq_factor},
                         {"high_freq_factor", c.rope_scaling.high_freq_factor},
                         {"original_max_position_embeddings", c.rope_scaling.original_max_position}};
  } else {
    j["rope_scaling"] = nullptr;
  }
  j["tie_word_embeddings"] = c.tied_embeddings;
  j["vocab_size"] = c.vocab_size;
  j["torch_dtype"] = torch_dtype_name(dtype);
  if (c.architecture != "qwen2") {
    j["attention_bias"] = false;
    j["mlp_bias"] = false;
  }
  return j;
}

std::vector<int64_t> half_split_row_order(int n_heads, int head_dim) {
  std::vector<int64_t> order(static_cast<size_t>(n_heads) * head_dim);
  const int half = head_dim / 2;
  for (int h = 0; h < n_heads; ++h) {
    for (int j = 0; j < 2; ++j) {
      for (int i = 0; i < half; ++i) order[h * head_dim + j * half + i] = h * head_dim + 2 * i + j;
    }
  }
  return order;
}

Status check_hf_export_options(const ExportOptions& options) {
  if (!options.tokenizer_path.empty() && !options.tokenizer_path.ends_with(".json") &&
      !options.tokenizer_path.ends_with(".model")) {
    return make_error("--tokenizer {}: give the tokenizer.json (or tokenizer.model) of a Hugging Face folder; its "
                      "folder's tokenizer files are copied",
                      options.tokenizer_path);
  }
  return dense_dtype(options.type).status();
}

Expected<ExportReport> export_safetensors_target(const ExportOptions& options) { return run_hf_target(options, false); }

Expected<ExportReport> export_compressed_tensors_target(const ExportOptions& options) {
  return run_hf_target(options, true);
}

Expected<HfExportReport> export_safetensors(const ExportSource& source, const HfExportOptions& options) {
  return export_folder(source, options, false);
}

Expected<HfExportReport> export_compressed_tensors(const ExportSource& source, const HfExportOptions& options) {
  return export_folder(source, options, true);
}

}  // namespace lowbit
