#include "model/lowbit_file.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>

#include <fmt/ranges.h>

#include "formats/trellis_code.h"
#include "io/untrusted_json.h"
#include "quant/weight_format.h"

namespace lowbit {
namespace {

using json = nlohmann::json;

constexpr uint64_t kOutlierRecordBytes = 12;  // i32 row, i32 col, f32 value

json spec_json(const BlockFormatSpec& s) {
  return {{"name", s.name},
          {"element", s.element},
          {"granularity", granularity_name(s.granularity)},
          {"group_rows", s.group_rows},
          {"group_cols", s.group_cols},
          {"scale_type", scale_type_name(s.scale_type)},
          {"rule", scale_rule_name(s.rule)},
          {"asymmetric", s.asymmetric},
          {"tensor_scale", s.tensor_scale},
          {"element_unit_log2", s.element_unit_log2}};
}

// What a GGUF-typed record stores beside its format name: the type as numbered in
// GGUF files and its block shape.
json gguf_json(const GgufBlockType& t) {
  return {{"type", t.type_id}, {"block_size", t.block_size}, {"bytes_per_block", t.bytes_per_block}};
}

// What a trellis-coded record stores beside its name: the trellis and its
// codebook's version (formats/trellis_code.h), so a build with another codebook refuses it.
json trellis_json(const TrellisParams& p) {
  return {{"state_bits", p.state_bits}, {"step_bits", p.step_bits},  {"values_per_step", p.values_per_step},
          {"group", p.group},           {"seq_len", kTrellisSeqLen}, {"codebook", kTrellisCodebookVersion}};
}

// Whether a record (or its low-rank factors) is stored in a trellis format.
bool record_is_trellis(const json& r) {
  const auto trellis = [](const json& j) {
    return j.is_object() && j.contains("format") && j["format"].is_string() &&
           is_trellis_format_name(j["format"].get<std::string>());
  };
  return trellis(r) || (r.contains("lowrank") && trellis(r["lowrank"]));
}

// Files with trellis tensors must name this build's codebook in the header: the
// first codebook (1MAD, written before the key existed) decodes the same codes to
// other values, so such a file is refused rather than read wrong.
Status check_trellis_codebook(const GgufFile& h, const json& tensors, const std::string& path) {
  if (std::none_of(tensors.begin(), tensors.end(), record_is_trellis)) return Status::ok_status();
  const int64_t version = h.get_int_or(kTrellisCodebookKey, -1);
  if (version == kTrellisCodebookVersion) return Status::ok_status();
  return make_error("{}: trellis-coded tensors of another codebook ({} {}, this build decodes {}): re-quantize "
                    "the model with this build",
                    path, kTrellisCodebookKey, version < 0 ? std::string("absent") : std::to_string(version),
                    kTrellisCodebookVersion);
}

// The definition a record carries of its format: "spec" (scaled formats),
// "gguf" (GGUF block types), "trellis" (formats/trellis_code.h), "vq"
// (formats/vq_code.h: the codebooks themselves travel in the record's `mins`
// blob) or "ptq161" (formats/ptq161_code.h); the loader compares it with this build's.
std::pair<const char*, json> format_definition(const WeightFormat& f) {
  if (const BlockFormat* b = f.block_format()) return {"spec", spec_json(b->spec)};
  if (const TrellisParams* t = f.trellis_params()) return {"trellis", trellis_json(*t)};
  if (const VqParams* v = f.vq_params()) {
    return {"vq", json{{"stages", v->stages}, {"dim", kVqDim}, {"centroids", kVqCentroids}, {"group", v->group}}};
  }
  if (const Ptq161Params* p = f.ptq161_params()) {
    return {"ptq161", json{{"salient_permille", p->salient_permille}, {"block", p->block}}};
  }
  return {"gguf", gguf_json(*f.gguf_type())};
}

// The array sizes a [rows, cols] matrix takes in `format`.
using PartSizes = WeightFormat::ArraySizes;
Expected<PartSizes> part_sizes(const std::string& format, int64_t rows, int64_t cols) {
  if (format == kFp32Storage) return PartSizes{static_cast<uint64_t>(rows * cols) * 4, 0, 0};
  LB_ASSIGN_OR_RETURN(WeightFormat f, WeightFormat::find(format));
  LB_RETURN_IF_ERROR(f.check_shape(rows, cols));
  return f.array_sizes(rows, cols);
}

Expected<int64_t> get_int(const json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || !j[key].is_number_integer()) return make_error("{}: missing integer '{}'", where, key);
  return j[key].get<int64_t>();
}

Expected<std::string> get_string(const json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || !j[key].is_string()) return make_error("{}: missing string '{}'", where, key);
  return j[key].get<std::string>();
}

Expected<json> parse_header_json(const GgufFile& gguf, const std::string& key) {
  LB_ASSIGN_OR_RETURN(std::string text, gguf.get_string(key));
  return parse_untrusted_json(text, fmt::format("{}: metadata '{}'", gguf.path(), key));
}

// The index schema, checked once on open so that every later access
// (read, summary, record_field users) may rely on the types. `where` names
// the file and tensor; `key` is the field.
Status expect_type(const json& r, const char* key, bool ok, const char* expected, const std::string& where) {
  if (ok) return Status::ok_status();
  return make_error("{}: '{}' is {}, expected {}", where, key, describe_json(r[key]), expected);
}

Status check_int_field(const json& r, const char* key, const std::string& where) {
  if (!r.contains(key)) return make_error("{}: missing integer '{}'", where, key);
  return expect_type(r, key, r[key].is_number_integer(), "an integer", where);
}

Status check_blob_field(const json& r, const char* key, const ContainerReader& container, const std::string& where) {
  if (!r.contains(key)) return make_error("{}: missing blob '{}'", where, key);
  const json& ref = r[key];
  LB_RETURN_IF_ERROR(expect_type(r, key, ref.is_object(), "a blob {\"offset\": u64, \"bytes\": u64}", where));
  for (const char* field : {"offset", "bytes"}) {
    if (!ref.contains(field) || !ref[field].is_number_unsigned()) {
      return make_error("{}: {} '{}' is {}, expected a non-negative integer", where, key, field,
                        ref.contains(field) ? describe_json(ref[field]) : std::string("missing"));
    }
  }
  const auto bytes = container.blob(ref, key);
  if (!bytes.ok()) return make_error("{}: {}", where, bytes.status().message());
  return Status::ok_status();
}

// A stored matrix: rows, cols, tensor_scale and the three blobs.
Status check_part(const json& part, const ContainerReader& container, const std::string& where) {
  if (!part.is_object()) return make_error("{}: is {}, expected an object", where, describe_json(part));
  LB_RETURN_IF_ERROR(check_int_field(part, "rows", where));
  LB_RETURN_IF_ERROR(check_int_field(part, "cols", where));
  if (!part.contains("tensor_scale")) return make_error("{}: missing number 'tensor_scale'", where);
  LB_RETURN_IF_ERROR(expect_type(part, "tensor_scale", part["tensor_scale"].is_number(), "a number", where));
  for (const char* key : {"codes", "scales", "mins"}) LB_RETURN_IF_ERROR(check_blob_field(part, key, container, where));
  return Status::ok_status();
}

Status check_record(const json& r, const ContainerReader& container, const std::string& where) {
  if (!r.contains("shape")) return make_error("{}: missing 'shape'", where);
  const json& shape = r["shape"];
  LB_RETURN_IF_ERROR(expect_type(r, "shape", shape.is_array(), "an array of dimensions", where));
  for (const json& d : shape) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0) {
      return make_error("{}: 'shape' holds {}, expected non-negative integers", where, describe_json(d));
    }
  }
  if (!r.contains("format")) return make_error("{}: missing string 'format'", where);
  LB_RETURN_IF_ERROR(expect_type(r, "format", r["format"].is_string(), "a format name", where));
  if (r.contains("method")) LB_RETURN_IF_ERROR(expect_type(r, "method", r["method"].is_string(), "a string", where));
  LB_RETURN_IF_ERROR(check_part(r, container, where));
  if (r.contains("outliers")) {
    const json& o = r["outliers"];
    LB_RETURN_IF_ERROR(expect_type(r, "outliers", o.is_object(), "an object", where));
    LB_RETURN_IF_ERROR(check_int_field(o, "count", where + " outliers"));
    LB_RETURN_IF_ERROR(check_blob_field(o, "data", container, where + " outliers"));
  }
  if (r.contains("lowrank")) {
    const json& l = r["lowrank"];
    LB_RETURN_IF_ERROR(expect_type(r, "lowrank", l.is_object(), "an object", where));
    LB_RETURN_IF_ERROR(check_int_field(l, "rank", where + " lowrank"));
    if (!l.contains("format")) return make_error("{} lowrank: missing string 'format'", where);
    LB_RETURN_IF_ERROR(expect_type(l, "format", l["format"].is_string(), "a format name", where + " lowrank"));
    for (const char* key : {"u", "v"}) {
      if (!l.contains(key)) return make_error("{} lowrank: missing '{}'", where, key);
      LB_RETURN_IF_ERROR(check_part(l[key], container, fmt::format("{} lowrank {}", where, key)));
    }
  }
  return Status::ok_status();
}

// rows x cols of a record shape: a vector [n] is one row.
bool matrix_dims(const std::vector<int64_t>& shape, int64_t& rows, int64_t& cols) {
  if (shape.size() == 1) {
    rows = 1;
    cols = shape[0];
  } else if (shape.size() == 2) {
    rows = shape[0];
    cols = shape[1];
  } else {
    return false;
  }
  return rows > 0 && cols > 0;
}

}  // namespace

// ---------------------------------------------------------------------------- config

json config_to_json(const ModelConfig& c) {
  return {{"architecture", c.architecture},
          {"n_layers", c.n_layers},
          {"dim", c.dim},
          {"n_heads", c.n_heads},
          {"n_kv_heads", c.n_kv_heads},
          {"head_dim", c.head_dim},
          {"ffn_dim", c.ffn_dim},
          {"vocab_size", c.vocab_size},
          {"max_seq_len", c.max_seq_len},
          {"norm_eps", c.norm_eps},
          {"rope_theta", c.rope_theta},
          {"rope_layout", rope_layout_name(c.rope_layout)},
          {"rope_scaling",
           {{"llama3", c.rope_scaling.llama3},
            {"factor", c.rope_scaling.factor},
            {"low_freq_factor", c.rope_scaling.low_freq_factor},
            {"high_freq_factor", c.rope_scaling.high_freq_factor},
            {"original_max_position", c.rope_scaling.original_max_position}}},
          {"tied_embeddings", c.tied_embeddings},
          {"qkv_bias", c.qkv_bias}};
}

namespace {

// Fields of lowbit.config, each type-checked before it is read: get<int>() on
// 1e30 is an undefined float-to-int cast, on 2^40 a silent truncation, and on a
// string an exception whose message names no field. Errors read
// "FILE: lowbit.config: 'n_layers' is "8", expected an integer in [-2^31, 2^31)".
class ConfigFields {
 public:
  ConfigFields(const json& object, std::string where) : object_(object), where_(std::move(where)) {}

  Status read(const char* key, std::string& out) const {
    LB_ASSIGN_OR_RETURN(const json* v, field(key));
    if (!v->is_string()) return wrong_type(key, *v, "a string");
    out = v->get<std::string>();
    return Status::ok_status();
  }
  Status read(const char* key, bool& out) const {
    LB_ASSIGN_OR_RETURN(const json* v, field(key));
    if (!v->is_boolean()) return wrong_type(key, *v, "true or false");
    out = v->get<bool>();
    return Status::ok_status();
  }
  template <typename Int>
    requires std::is_integral_v<Int>
  Status read(const char* key, Int& out) const {
    LB_ASSIGN_OR_RETURN(const json* v, field(key));
    const char* expected = sizeof(Int) == 4 ? "an integer in [-2^31, 2^31)" : "an integer in [-2^63, 2^63)";
    if (!v->is_number_integer()) return wrong_type(key, *v, expected);
    if (v->is_number_unsigned()) {
      const uint64_t u = v->get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<Int>::max())) return wrong_type(key, *v, expected);
      out = static_cast<Int>(u);
      return Status::ok_status();
    }
    const int64_t i = v->get<int64_t>();
    if (i < std::numeric_limits<Int>::min() || i > std::numeric_limits<Int>::max()) {
      return wrong_type(key, *v, expected);
    }
    out = static_cast<Int>(i);
    return Status::ok_status();
  }
  template <typename Float>
    requires std::is_floating_point_v<Float>
  Status read(const char* key, Float& out) const {
    LB_ASSIGN_OR_RETURN(const json* v, field(key));
    // A float field holding 1e300 would be an undefined narrowing conversion.
    if (!v->is_number() || !std::isfinite(v->get<double>()) ||
        std::fabs(v->get<double>()) > static_cast<double>(std::numeric_limits<Float>::max())) {
      return wrong_type(key, *v, sizeof(Float) == 4 ? "a finite 32-bit float" : "a finite number");
    }
    out = static_cast<Float>(v->get<double>());
    return Status::ok_status();
  }
  // A nested object, e.g. rope_scaling.
  Expected<ConfigFields> object(const char* key) const {
    LB_ASSIGN_OR_RETURN(const json* v, field(key));
    if (!v->is_object()) return wrong_type(key, *v, "an object");
    return ConfigFields(*v, where_ + "." + key);
  }

 private:
  Expected<const json*> field(const char* key) const {
    const auto it = object_.find(key);
    if (it == object_.end()) return make_error("{}: missing '{}'", where_, key);
    return &*it;
  }
  Status wrong_type(const char* key, const json& v, const char* expected) const {
    return make_error("{}: '{}' is {}, expected {}", where_, key, describe_json(v), expected);
  }

  const json& object_;
  std::string where_;
};

}  // namespace

Expected<ModelConfig> config_from_json(const json& j, const std::string& source) {
  const std::string where = source + ": lowbit.config";
  if (!j.is_object()) return make_error("{}: is {}, expected an object", where, describe_json(j));
  const ConfigFields f(j, where);
  ModelConfig c;
  LB_RETURN_IF_ERROR(f.read("architecture", c.architecture));
  LB_RETURN_IF_ERROR(f.read("n_layers", c.n_layers));
  LB_RETURN_IF_ERROR(f.read("dim", c.dim));
  LB_RETURN_IF_ERROR(f.read("n_heads", c.n_heads));
  LB_RETURN_IF_ERROR(f.read("n_kv_heads", c.n_kv_heads));
  LB_RETURN_IF_ERROR(f.read("head_dim", c.head_dim));
  LB_RETURN_IF_ERROR(f.read("ffn_dim", c.ffn_dim));
  LB_RETURN_IF_ERROR(f.read("vocab_size", c.vocab_size));
  LB_RETURN_IF_ERROR(f.read("max_seq_len", c.max_seq_len));
  LB_RETURN_IF_ERROR(f.read("norm_eps", c.norm_eps));
  LB_RETURN_IF_ERROR(f.read("rope_theta", c.rope_theta));
  std::string layout;
  LB_RETURN_IF_ERROR(f.read("rope_layout", layout));
  if (layout == rope_layout_name(RopeLayout::kHalfSplit)) {
    c.rope_layout = RopeLayout::kHalfSplit;
  } else if (layout == rope_layout_name(RopeLayout::kAdjacentPairs)) {
    c.rope_layout = RopeLayout::kAdjacentPairs;
  } else {
    return make_error("{}: unknown rope_layout {}", where, describe_json(layout));
  }
  LB_ASSIGN_OR_RETURN(const ConfigFields s, f.object("rope_scaling"));
  LB_RETURN_IF_ERROR(s.read("llama3", c.rope_scaling.llama3));
  LB_RETURN_IF_ERROR(s.read("factor", c.rope_scaling.factor));
  LB_RETURN_IF_ERROR(s.read("low_freq_factor", c.rope_scaling.low_freq_factor));
  LB_RETURN_IF_ERROR(s.read("high_freq_factor", c.rope_scaling.high_freq_factor));
  LB_RETURN_IF_ERROR(s.read("original_max_position", c.rope_scaling.original_max_position));
  LB_RETURN_IF_ERROR(f.read("tied_embeddings", c.tied_embeddings));
  LB_RETURN_IF_ERROR(f.read("qkv_bias", c.qkv_bias));
  LB_RETURN_IF_ERROR(c.validate(source));
  return c;
}

// ---------------------------------------------------------------------------- writer

Expected<LowbitFileWriter> LowbitFileWriter::create(const std::string& path, const LowbitFileInfo& info,
                                                    const GgufFile* tokenizer_gguf) {
  GgufWriter header;
  header.set_u32("lowbit.format_version", kLowbitFormatVersion);
  // In every file (the header precedes the tensors); the loader asks for it where trellis tensors are.
  header.set_u32(kTrellisCodebookKey, kTrellisCodebookVersion);
  header.set_string("lowbit.config", dump_json(config_to_json(info.config)));
  header.set_string("lowbit.recipe", dump_json(info.recipe));
  header.set_string("lowbit.calibration", dump_json(info.calibration));
  header.set_string("lowbit.source", dump_json(info.source));
  if (!info.kv.is_null()) header.set_string("lowbit.kv", dump_json(info.kv));
  if (!info.rotation.is_null()) header.set_string("lowbit.rotation", dump_json(info.rotation));
  if (tokenizer_gguf != nullptr) {
    for (const auto& [key, value] : tokenizer_gguf->metadata()) {
      if (key.rfind("tokenizer.", 0) == 0) header.set(key, value);
    }
  }
  LB_ASSIGN_OR_RETURN(ContainerWriter container, ContainerWriter::create(path, std::move(header)));
  return LowbitFileWriter(std::move(container));
}

Expected<LowbitFileWriter> LowbitFileWriter::reopen(const std::string& path, State state) {
  if (!state.tensors.is_array()) return make_error("{}.tmp: the index records to continue are not an array", path);
  LB_ASSIGN_OR_RETURN(ContainerWriter container, ContainerWriter::reopen(path, state.data_begin, state.bytes));
  LowbitFileWriter writer(std::move(container));
  writer.tensors_ = std::move(state.tensors);
  return writer;
}

Expected<json> LowbitFileWriter::write_part(const std::string& what, const std::string& format,
                                            const QuantizedTensor& t) {
  LB_ASSIGN_OR_RETURN(PartSizes sizes, part_sizes(format, t.rows, t.cols));
  if (t.codes.size() != sizes.codes || t.scales.size() != sizes.scales || t.mins.size() != sizes.mins) {
    return make_error("{}: {} arrays (codes {}, scales {}, mins {}) do not match [{}, {}] (expected {}, {}, {})", what,
                      format, t.codes.size(), t.scales.size(), t.mins.size(), t.rows, t.cols, sizes.codes, sizes.scales,
                      sizes.mins);
  }
  json part = {{"rows", t.rows}, {"cols", t.cols}, {"tensor_scale", t.tensor_scale}};
  LB_ASSIGN_OR_RETURN(BlobRef codes, container_.append(t.codes.data(), t.codes.size()));
  LB_ASSIGN_OR_RETURN(BlobRef scales, container_.append(t.scales.data(), t.scales.size()));
  LB_ASSIGN_OR_RETURN(BlobRef mins, container_.append(t.mins.data(), t.mins.size()));
  part["codes"] = blob_json(codes);
  part["scales"] = blob_json(scales);
  part["mins"] = blob_json(mins);
  return part;
}

Status LowbitFileWriter::add(const std::string& name, const std::vector<int64_t>& shape, const QuantizedWeight& q,
                             const std::string& method) {
  int64_t rows = 0, cols = 0;
  if (!matrix_dims(shape, rows, cols) || q.rows() != rows || q.cols() != cols) {
    return make_error("lowbit writer: tensor '{}': stored [{}, {}] does not match its shape", name, q.rows(), q.cols());
  }
  json record = {{"name", name}, {"shape", shape}, {"format", q.format}};
  if (q.format != kFp32Storage) {
    LB_ASSIGN_OR_RETURN(WeightFormat f, WeightFormat::find(q.format));
    auto [key, definition] = format_definition(f);
    record[key] = std::move(definition);
  }
  if (!method.empty()) record["method"] = method;
  LB_ASSIGN_OR_RETURN(json part, write_part("tensor '" + name + "'", q.format, q.tensor));
  record.update(part);
  if (!q.outliers.empty()) {
    std::vector<uint8_t> bytes(q.outliers.size() * kOutlierRecordBytes);
    for (size_t i = 0; i < q.outliers.size(); ++i) {
      std::memcpy(&bytes[i * 12 + 0], &q.outliers[i].row, 4);
      std::memcpy(&bytes[i * 12 + 4], &q.outliers[i].col, 4);
      std::memcpy(&bytes[i * 12 + 8], &q.outliers[i].value, 4);
    }
    LB_ASSIGN_OR_RETURN(BlobRef ref, container_.append(bytes.data(), bytes.size()));
    record["outliers"] = {{"count", q.outliers.size()}, {"data", blob_json(ref)}};
  }
  if (q.rank > 0) {
    json lowrank = {{"rank", q.rank}, {"format", q.lowrank_format}};
    LB_ASSIGN_OR_RETURN(lowrank["u"], write_part("tensor '" + name + "' U", q.lowrank_format, q.lowrank_u));
    LB_ASSIGN_OR_RETURN(lowrank["v"], write_part("tensor '" + name + "' V", q.lowrank_format, q.lowrank_v));
    record["lowrank"] = std::move(lowrank);
  }
  tensors_.push_back(std::move(record));
  return Status::ok_status();
}

Status LowbitFileWriter::add_fp32(const std::string& name, const std::vector<int64_t>& shape, const float* data) {
  int64_t rows = 0, cols = 0;
  if (!matrix_dims(shape, rows, cols)) return make_error("lowbit writer: tensor '{}': bad shape", name);
  QuantizedWeight q;
  q.format = kFp32Storage;
  LB_ASSIGN_OR_RETURN(q.tensor, quantize_matrix(kFp32Storage, data, rows, cols));
  return add(name, shape, q, "");
}

Status LowbitFileWriter::set_record_field(const std::string& name, const std::string& key, json value) {
  for (json& record : tensors_) {
    if (record["name"] == name) {
      record[key] = std::move(value);
      return Status::ok_status();
    }
  }
  return make_error("lowbit writer: no tensor '{}' to set '{}' on", name, key);
}

Status LowbitFileWriter::finish() { return container_.finish(json{{"tensors", tensors_}}); }

// ---------------------------------------------------------------------------- reader

Expected<LowbitModelFile> LowbitModelFile::open(const std::string& path) {
  LB_ASSIGN_OR_RETURN(ContainerReader reader, ContainerReader::open(path));
  LowbitModelFile file(std::make_unique<ContainerReader>(std::move(reader)));
  const GgufFile& h = file.header();
  const int64_t version = h.get_int_or("lowbit.format_version", -1);
  if (version != kLowbitFormatVersion) {
    return make_error("{}: lowbit model format version {}, this build reads version {}", path, version,
                      kLowbitFormatVersion);
  }
  LB_ASSIGN_OR_RETURN(json config, parse_header_json(h, "lowbit.config"));
  LB_ASSIGN_OR_RETURN(file.info_.config, config_from_json(config, path));
  LB_ASSIGN_OR_RETURN(file.info_.recipe, parse_header_json(h, "lowbit.recipe"));
  LB_ASSIGN_OR_RETURN(file.info_.calibration, parse_header_json(h, "lowbit.calibration"));
  LB_ASSIGN_OR_RETURN(file.info_.source, parse_header_json(h, "lowbit.source"));
  if (h.find("lowbit.kv") != nullptr) {
    LB_ASSIGN_OR_RETURN(file.info_.kv, parse_header_json(h, "lowbit.kv"));
  }
  if (h.find("lowbit.rotation") != nullptr) {
    LB_ASSIGN_OR_RETURN(file.info_.rotation, parse_header_json(h, "lowbit.rotation"));
  }
  const json& index = file.container_->index();
  if (!index.contains("tensors") || !index["tensors"].is_array()) {
    return make_error("{}: index has no \"tensors\" array", path);
  }
  for (const json& record : index["tensors"]) {
    if (!record.is_object() || !record.contains("name") || !record["name"].is_string()) {
      return make_error("{}: index record without a name", path);
    }
    const std::string name = record["name"].get<std::string>();
    LB_RETURN_IF_ERROR(check_record(record, *file.container_, fmt::format("{}: index: tensor '{}'", path, name)));
    if (!file.records_.emplace(name, &record).second) return make_error("{}: tensor '{}' appears twice", path, name);
  }
  LB_RETURN_IF_ERROR(check_trellis_codebook(h, index["tensors"], path));
  return file;
}

Expected<QuantizedTensor> LowbitModelFile::read_part(const json& part, const std::string& format, int64_t rows,
                                                     int64_t cols, const std::string& what) const {
  if (!part.is_object()) return make_error("{}: {}: missing storage", path(), what);
  LB_ASSIGN_OR_RETURN(int64_t stored_rows, get_int(part, "rows", path() + ": " + what));
  LB_ASSIGN_OR_RETURN(int64_t stored_cols, get_int(part, "cols", path() + ": " + what));
  if (stored_rows != rows || stored_cols != cols) {
    return make_error("{}: {}: stored [{}, {}], expected [{}, {}]", path(), what, stored_rows, stored_cols, rows, cols);
  }
  if (!part.contains("tensor_scale") || !part["tensor_scale"].is_number()) {
    return make_error("{}: {}: missing tensor_scale", path(), what);
  }
  QuantizedTensor t;
  t.rows = rows;
  t.cols = cols;
  t.tensor_scale = part["tensor_scale"].get<float>();
  auto sizes = part_sizes(format, rows, cols);
  if (!sizes.ok()) return sizes.status().with_context(path() + ": " + what);
  const struct {
    const char* key;
    std::vector<uint8_t>* out;
    uint64_t expected;
  } arrays[] = {
      {"codes", &t.codes, sizes->codes}, {"scales", &t.scales, sizes->scales}, {"mins", &t.mins, sizes->mins}};
  for (const auto& a : arrays) {
    const std::string name = what + " " + a.key;
    if (!part.contains(a.key)) return make_error("{}: {}: missing", path(), name);
    LB_ASSIGN_OR_RETURN(std::span<const uint8_t> bytes, container_->blob(part[a.key], name));
    if (bytes.size() != a.expected) {
      return make_error("{}: {}: {} bytes, {} [{}, {}] needs {}", path(), name, bytes.size(), format, rows, cols,
                        a.expected);
    }
    a.out->assign(bytes.begin(), bytes.end());
  }
  return t;
}

Expected<QuantizedWeight> LowbitModelFile::read(const std::string& name, const std::vector<int64_t>& shape) const {
  auto it = records_.find(name);
  if (it == records_.end()) return make_error("{}: missing tensor '{}'", path(), name);
  const json& r = *it->second;
  const std::string what = "tensor '" + name + "'";
  if (!r.contains("shape") || !r["shape"].is_array() || r["shape"] != json(shape)) {
    return make_error("{}: {} has shape [{}], expected [{}]", path(), what,
                      fmt::join(r["shape"].get<std::vector<int64_t>>(), ", "), fmt::join(shape, ", "));
  }
  int64_t rows = 0, cols = 0;
  matrix_dims(shape, rows, cols);
  QuantizedWeight q;
  LB_ASSIGN_OR_RETURN(q.format, get_string(r, "format", path() + ": " + what));
  if (q.format != kFp32Storage) {
    auto format = WeightFormat::find(q.format);
    if (!format.ok()) return format.status().with_context(path() + ": " + what);
    const auto [key, definition] = format_definition(*format);
    if (!r.contains(key) || r[key] != definition) {
      return make_error("{}: {}: format '{}' as stored ({}) differs from this build's ({})", path(), what, q.format,
                        r.contains(key) ? dump_json(r[key]) : "none", dump_json(definition));
    }
  }
  LB_ASSIGN_OR_RETURN(q.tensor, read_part(r, q.format, rows, cols, what));
  if (r.contains("outliers")) {
    const json& o = r["outliers"];
    LB_ASSIGN_OR_RETURN(int64_t count, get_int(o, "count", path() + ": " + what + " outliers"));
    if (!o.contains("data")) return make_error("{}: {} outliers: missing data", path(), what);
    LB_ASSIGN_OR_RETURN(std::span<const uint8_t> bytes, container_->blob(o["data"], what + " outliers"));
    if (count < 0 || bytes.size() != static_cast<uint64_t>(count) * kOutlierRecordBytes) {
      return make_error("{}: {} outliers: {} bytes for {} records", path(), what, bytes.size(), count);
    }
    q.outliers.resize(static_cast<size_t>(count));
    for (size_t i = 0; i < q.outliers.size(); ++i) {
      SparseOutlier& s = q.outliers[i];
      std::memcpy(&s.row, &bytes[i * 12 + 0], 4);
      std::memcpy(&s.col, &bytes[i * 12 + 4], 4);
      std::memcpy(&s.value, &bytes[i * 12 + 8], 4);
      if (s.row < 0 || s.row >= rows || s.col < 0 || s.col >= cols || !std::isfinite(s.value)) {
        return make_error("{}: {} outlier {} at ({}, {}) value {} is outside [{}, {}] or not finite", path(), what, i,
                          s.row, s.col, s.value, rows, cols);
      }
    }
  }
  if (r.contains("lowrank")) {
    const json& l = r["lowrank"];
    LB_ASSIGN_OR_RETURN(int64_t rank, get_int(l, "rank", path() + ": " + what + " lowrank"));
    LB_ASSIGN_OR_RETURN(q.lowrank_format, get_string(l, "format", path() + ": " + what + " lowrank"));
    if (rank <= 0 || rank > std::min(rows, cols)) {
      return make_error("{}: {}: low-rank rank {} outside [1, {}]", path(), what, rank, std::min(rows, cols));
    }
    q.rank = static_cast<int>(rank);
    LB_ASSIGN_OR_RETURN(q.lowrank_u, read_part(l.value("u", json()), q.lowrank_format, rows, rank, what + " U"));
    LB_ASSIGN_OR_RETURN(q.lowrank_v, read_part(l.value("v", json()), q.lowrank_format, rank, cols, what + " V"));
  }
  return q;
}

Expected<std::vector<float>> LowbitModelFile::read_fp32(const std::string& name,
                                                        const std::vector<int64_t>& shape) const {
  LB_ASSIGN_OR_RETURN(QuantizedWeight q, read(name, shape));
  std::vector<float> out(static_cast<size_t>(q.rows() * q.cols()));
  LB_RETURN_IF_ERROR(dequantize_weight(q, out.data()).with_context(fmt::format("{}: tensor '{}'", path(), name)));
  drop_pages(name);  // `out` is the copy; the mapped pages would double the resident size
  return out;
}

void LowbitModelFile::drop_pages(const std::string& name) const {
  auto it = records_.find(name);
  if (it == records_.end()) return;
  auto drop = [this](const json& part) {
    if (!part.is_object()) return;
    for (const char* key : {"codes", "scales", "mins", "data"}) {
      if (!part.contains(key)) continue;
      auto bytes = container_->blob(part[key], key);
      if (bytes.ok()) container_->drop_pages(*bytes);
    }
  };
  const json& r = *it->second;
  drop(r);
  if (r.contains("outliers")) drop(r["outliers"]);
  if (r.contains("lowrank")) {
    drop(r["lowrank"].value("u", json()));
    drop(r["lowrank"].value("v", json()));
  }
}

bool LowbitModelFile::is_quantized(const std::string& name) const {
  auto it = records_.find(name);
  return it != records_.end() && it->second->value("format", "") != kFp32Storage;
}

const json* LowbitModelFile::record_field(const std::string& name, const std::string& key) const {
  auto it = records_.find(name);
  if (it == records_.end() || !it->second->contains(key)) return nullptr;
  return &(*it->second)[key];
}

FileSummary LowbitModelFile::summary() const {
  FileSummary s;
  s.format = "lowbit";
  s.path = path();
  s.file_bytes = container_->file_size();
  for (const json& r : container_->index()["tensors"]) {
    StoredTensor t;
    t.name = r["name"].get<std::string>();
    t.dtype = r["format"].get<std::string>();
    // Types were checked by check_record() on open.
    if (r.contains("lowrank")) t.dtype += fmt::format("+lorc{}", r["lowrank"]["rank"].get<int64_t>());
    if (r.contains("outliers")) t.dtype += "+outliers";
    t.shape = r["shape"].get<std::vector<int64_t>>();
    // Every blob the record references, and the FP32 tensor scale of two-level formats.
    auto add_part = [&t](const json& part, const std::string& format) {
      for (const char* key : {"codes", "scales", "mins"}) {
        t.n_bytes += part[key]["bytes"].get<uint64_t>();
      }
      auto f = WeightFormat::find(format);
      if (f.ok() && f->block_format() != nullptr && f->block_format()->layout.tensor_scale) t.n_bytes += 4;
    };
    add_part(r, r["format"].get<std::string>());
    if (r.contains("outliers")) t.n_bytes += r["outliers"]["data"]["bytes"].get<uint64_t>();
    if (r.contains("lowrank")) {
      const json& l = r["lowrank"];
      add_part(l["u"], l["format"].get<std::string>());
      add_part(l["v"], l["format"].get<std::string>());
    }
    s.tensors.push_back(std::move(t));
  }
  return s;
}

}  // namespace lowbit
