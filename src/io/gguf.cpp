#include "io/gguf.h"

#include <limits>
#include <optional>

#include <fmt/ranges.h>

#include "core/byte_reader.h"
#include "core/checked_math.h"

namespace lowbit {
namespace {

constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" little-endian
constexpr uint64_t kMaxStringBytes = 1ull << 30;
constexpr uint64_t kMaxArrayElements = 1ull << 32;
constexpr uint32_t kMaxDims = 4;
constexpr int kMaxArrayNesting = 4;

Expected<std::string> read_gguf_string(ByteReader& reader, const char* what) {
  LB_ASSIGN_OR_RETURN(uint64_t length, reader.read<uint64_t>(what));
  if (length > kMaxStringBytes) {
    return make_error("{}: {} has an implausible length {} at offset {}", reader.source(), what,
                      length, reader.offset() - 8);
  }
  return reader.read_bytes_as_string(length, what);
}

Expected<GgufValue> read_value(ByteReader& reader, GgufValueType type, const std::string& key,
                               int depth);

template <typename T>
Expected<GgufValue> read_scalar(ByteReader& reader, GgufValueType type, const std::string& key) {
  auto raw = reader.read<T>(key.c_str());
  if (!raw.ok()) return raw.status();
  GgufValue value;
  value.type = type;
  if constexpr (std::is_same_v<T, bool>) {
    value.data = raw.value();
  } else if constexpr (std::is_floating_point_v<T>) {
    value.data = static_cast<double>(raw.value());
  } else if constexpr (std::is_signed_v<T>) {
    value.data = static_cast<int64_t>(raw.value());
  } else {
    value.data = static_cast<uint64_t>(raw.value());
  }
  return value;
}

Expected<GgufValue> read_array(ByteReader& reader, const std::string& key, int depth) {
  if (depth >= kMaxArrayNesting) {
    return make_error("{}: metadata '{}' nests arrays too deeply", reader.source(), key);
  }
  LB_ASSIGN_OR_RETURN(uint32_t element_type, reader.read<uint32_t>("array element type"));
  LB_ASSIGN_OR_RETURN(uint64_t count, reader.read<uint64_t>("array length"));
  if (element_type > static_cast<uint32_t>(GgufValueType::FLOAT64)) {
    return make_error("{}: metadata '{}' has unknown array element type {}", reader.source(), key,
                      element_type);
  }
  // Each element takes at least one byte: a count beyond the bytes left is corrupt.
  if (count > kMaxArrayElements || count > reader.remaining()) {
    return make_error("{}: metadata '{}' claims {} array elements, more than the file holds",
                      reader.source(), key, count);
  }
  auto array = std::make_shared<GgufArray>();
  array->reserve(static_cast<size_t>(count));
  for (uint64_t i = 0; i < count; ++i) {
    LB_ASSIGN_OR_RETURN(GgufValue element,
                        read_value(reader, static_cast<GgufValueType>(element_type), key, depth + 1));
    array->push_back(std::move(element));
  }
  GgufValue value;
  value.type = GgufValueType::ARRAY;
  value.element_type = static_cast<GgufValueType>(element_type);
  value.data = std::move(array);
  return value;
}

Expected<GgufValue> read_value(ByteReader& reader, GgufValueType type, const std::string& key,
                               int depth) {
  switch (type) {
    case GgufValueType::UINT8: return read_scalar<uint8_t>(reader, type, key);
    case GgufValueType::INT8: return read_scalar<int8_t>(reader, type, key);
    case GgufValueType::UINT16: return read_scalar<uint16_t>(reader, type, key);
    case GgufValueType::INT16: return read_scalar<int16_t>(reader, type, key);
    case GgufValueType::UINT32: return read_scalar<uint32_t>(reader, type, key);
    case GgufValueType::INT32: return read_scalar<int32_t>(reader, type, key);
    case GgufValueType::FLOAT32: return read_scalar<float>(reader, type, key);
    case GgufValueType::UINT64: return read_scalar<uint64_t>(reader, type, key);
    case GgufValueType::INT64: return read_scalar<int64_t>(reader, type, key);
    case GgufValueType::FLOAT64: return read_scalar<double>(reader, type, key);
    case GgufValueType::BOOL: {
      LB_ASSIGN_OR_RETURN(uint8_t raw, reader.read<uint8_t>(key.c_str()));
      if (raw > 1) return make_error("{}: metadata '{}' has bool value {}", reader.source(), key, raw);
      GgufValue value;
      value.type = type;
      value.data = raw != 0;
      return value;
    }
    case GgufValueType::STRING: {
      LB_ASSIGN_OR_RETURN(std::string s, read_gguf_string(reader, key.c_str()));
      GgufValue value;
      value.type = type;
      value.data = std::move(s);
      return value;
    }
    case GgufValueType::ARRAY: return read_array(reader, key, depth);
  }
  return make_error("{}: metadata '{}' has unknown value type {}", reader.source(), key,
                    static_cast<uint32_t>(type));
}

}  // namespace

const char* gguf_value_type_name(GgufValueType type) {
  switch (type) {
    case GgufValueType::UINT8: return "u8";
    case GgufValueType::INT8: return "i8";
    case GgufValueType::UINT16: return "u16";
    case GgufValueType::INT16: return "i16";
    case GgufValueType::UINT32: return "u32";
    case GgufValueType::INT32: return "i32";
    case GgufValueType::FLOAT32: return "f32";
    case GgufValueType::BOOL: return "bool";
    case GgufValueType::STRING: return "string";
    case GgufValueType::ARRAY: return "array";
    case GgufValueType::UINT64: return "u64";
    case GgufValueType::INT64: return "i64";
    case GgufValueType::FLOAT64: return "f64";
  }
  return "unknown";
}

bool GgufValue::is_integer() const {
  return std::holds_alternative<uint64_t>(data) || std::holds_alternative<int64_t>(data);
}
bool GgufValue::is_float() const { return std::holds_alternative<double>(data); }
int64_t GgufValue::as_int() const {
  if (auto* u = std::get_if<uint64_t>(&data)) return static_cast<int64_t>(*u);
  if (auto* b = std::get_if<bool>(&data)) return *b ? 1 : 0;
  return std::get<int64_t>(data);
}
double GgufValue::as_double() const {
  if (auto* d = std::get_if<double>(&data)) return *d;
  return static_cast<double>(as_int());
}
const std::string& GgufValue::as_string() const { return std::get<std::string>(data); }
const GgufArray& GgufValue::as_array() const { return *std::get<std::shared_ptr<GgufArray>>(data); }

Expected<GgufFile> GgufFile::open(const std::string& path) {
  GgufFile gguf;
  LB_ASSIGN_OR_RETURN(gguf.file_, MappedFile::open(path));
  ByteReader reader(gguf.file_.data(), gguf.file_.size(), path);

  LB_ASSIGN_OR_RETURN(uint32_t magic, reader.read<uint32_t>("magic"));
  if (magic != kGgufMagic) {
    return make_error("{}: not a GGUF file (magic 0x{:08x}, expected 0x{:08x} \"GGUF\")", path,
                      magic, kGgufMagic);
  }
  LB_ASSIGN_OR_RETURN(gguf.version_, reader.read<uint32_t>("version"));
  if (gguf.version_ != 2 && gguf.version_ != 3) {
    return make_error("{}: unsupported GGUF version {} (lowbit reads v2 and v3)", path,
                      gguf.version_);
  }
  LB_ASSIGN_OR_RETURN(uint64_t n_tensors, reader.read<uint64_t>("tensor count"));
  LB_ASSIGN_OR_RETURN(uint64_t n_metadata, reader.read<uint64_t>("metadata count"));
  if (n_tensors > reader.remaining() || n_metadata > reader.remaining()) {
    return make_error("{}: header claims {} tensors and {} metadata entries, more than the file holds",
                      path, n_tensors, n_metadata);
  }

  for (uint64_t i = 0; i < n_metadata; ++i) {
    LB_ASSIGN_OR_RETURN(std::string key, read_gguf_string(reader, "metadata key"));
    LB_ASSIGN_OR_RETURN(uint32_t type, reader.read<uint32_t>("metadata value type"));
    if (type > static_cast<uint32_t>(GgufValueType::FLOAT64)) {
      return make_error("{}: metadata '{}' has unknown value type {}", path, key, type);
    }
    LB_ASSIGN_OR_RETURN(GgufValue value, read_value(reader, static_cast<GgufValueType>(type), key, 0));
    gguf.metadata_[key] = std::move(value);
  }
  if (const GgufValue* align = gguf.find("general.alignment")) {
    if (!align->is_integer() || align->as_int() <= 0 || (align->as_int() & (align->as_int() - 1)) != 0) {
      return make_error("{}: general.alignment must be a positive power of two", path);
    }
    gguf.alignment_ = static_cast<uint64_t>(align->as_int());
  }

  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo info;
    LB_ASSIGN_OR_RETURN(info.name, read_gguf_string(reader, "tensor name"));
    LB_ASSIGN_OR_RETURN(uint32_t n_dims, reader.read<uint32_t>("tensor dimension count"));
    if (n_dims == 0 || n_dims > kMaxDims) {
      return make_error("{}: tensor '{}' has {} dimensions (1..{} allowed)", path, info.name, n_dims,
                        kMaxDims);
    }
    for (uint32_t d = 0; d < n_dims; ++d) {
      LB_ASSIGN_OR_RETURN(uint64_t dim, reader.read<uint64_t>("tensor dimension"));
      if (dim == 0 || dim > (1ull << 40)) {
        return make_error("{}: tensor '{}' has invalid dimension {}", path, info.name, dim);
      }
      info.dims.push_back(static_cast<int64_t>(dim));
    }
    const std::optional<int64_t> count = checked_product(info.dims);
    if (!count) {
      return make_error("{}: tensor '{}' has {} elements, more than 2^63", path, info.name,
                        fmt::join(info.dims, " x "));
    }
    info.element_count = *count;
    LB_ASSIGN_OR_RETURN(info.type_id, reader.read<uint32_t>("tensor type"));
    LB_ASSIGN_OR_RETURN(info.offset, reader.read<uint64_t>("tensor offset"));
    if (gguf.tensor_index_.count(info.name) != 0) {
      return make_error("{}: tensor '{}' appears twice", path, info.name);
    }
    gguf.tensor_index_[info.name] = gguf.tensors_.size();
    gguf.tensors_.push_back(std::move(info));
  }

  const uint64_t data_start = (reader.offset() + gguf.alignment_ - 1) / gguf.alignment_ * gguf.alignment_;
  const uint64_t data_bytes = gguf.file_.size() > data_start ? gguf.file_.size() - data_start : 0;
  for (GgufTensorInfo& info : gguf.tensors_) {
    const GgmlTypeTraits* traits = find_ggml_type(info.type_id);
    if (info.offset % gguf.alignment_ != 0) {
      return make_error("{}: tensor '{}' offset {} is not aligned to {}", path, info.name,
                        info.offset, gguf.alignment_);
    }
    if (traits == nullptr) {
      // Unknown types are kept (info can list them); dequantize() rejects them.
      continue;
    }
    if (info.dims[0] % traits->block_size != 0) {
      return make_error("{}: tensor '{}' row length {} is not a multiple of the {} block size {}",
                        path, info.name, info.dims[0], traits->name, traits->block_size);
    }
    const std::optional<uint64_t> n_bytes =
        checked_mul<uint64_t>(static_cast<uint64_t>(info.n_elements() / traits->block_size), traits->bytes_per_block);
    if (!n_bytes || info.offset > data_bytes || *n_bytes > data_bytes - info.offset) {
      return make_error("{}: tensor '{}' ({} {}) needs {} bytes at data offset {}, past the end of the file (data section: {} bytes)",
                        path, info.name, fmt::join(info.dims, " x "), traits->name,
                        n_bytes ? fmt::to_string(*n_bytes) : std::string("more than 2^64"), info.offset,
                        data_bytes);
    }
    info.n_bytes = *n_bytes;
    info.data = gguf.file_.data() + data_start + info.offset;
  }
  return gguf;
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

Expected<int64_t> GgufFile::get_int(const std::string& key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return make_error("{}: missing metadata '{}'", path(), key);
  if (!v->is_integer() && v->type != GgufValueType::BOOL) {
    return make_error("{}: metadata '{}' is {}, expected an integer", path(), key,
                      gguf_value_type_name(v->type));
  }
  return v->as_int();
}

Expected<double> GgufFile::get_float(const std::string& key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return make_error("{}: missing metadata '{}'", path(), key);
  if (!v->is_integer() && !v->is_float()) {
    return make_error("{}: metadata '{}' is {}, expected a number", path(), key,
                      gguf_value_type_name(v->type));
  }
  return v->as_double();
}

Expected<std::string> GgufFile::get_string(const std::string& key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return make_error("{}: missing metadata '{}'", path(), key);
  if (v->type != GgufValueType::STRING) {
    return make_error("{}: metadata '{}' is {}, expected a string", path(), key,
                      gguf_value_type_name(v->type));
  }
  return v->as_string();
}

namespace {
Expected<const GgufArray*> find_array(const GgufFile& file, const std::string& key,
                                      bool (*element_ok)(const GgufValue&), const char* expected) {
  const GgufValue* v = file.find(key);
  if (v == nullptr) return make_error("{}: missing metadata '{}'", file.path(), key);
  if (v->type != GgufValueType::ARRAY) {
    return make_error("{}: metadata '{}' is {}, expected an array", file.path(), key,
                      gguf_value_type_name(v->type));
  }
  for (const GgufValue& e : v->as_array()) {
    if (!element_ok(e)) {
      return make_error("{}: metadata '{}' holds {} elements, expected {}", file.path(), key,
                        gguf_value_type_name(e.type), expected);
    }
  }
  return &v->as_array();
}
}  // namespace

Expected<std::vector<std::string>> GgufFile::get_string_array(const std::string& key) const {
  LB_ASSIGN_OR_RETURN(const GgufArray* array,
                      find_array(*this, key, [](const GgufValue& e) { return e.type == GgufValueType::STRING; },
                                 "strings"));
  std::vector<std::string> out;
  out.reserve(array->size());
  for (const GgufValue& e : *array) out.push_back(e.as_string());
  return out;
}

Expected<std::vector<double>> GgufFile::get_float_array(const std::string& key) const {
  LB_ASSIGN_OR_RETURN(const GgufArray* array,
                      find_array(*this, key, [](const GgufValue& e) { return e.is_integer() || e.is_float(); },
                                 "numbers"));
  std::vector<double> out;
  out.reserve(array->size());
  for (const GgufValue& e : *array) out.push_back(e.as_double());
  return out;
}

Expected<std::vector<int64_t>> GgufFile::get_int_array(const std::string& key) const {
  LB_ASSIGN_OR_RETURN(const GgufArray* array,
                      find_array(*this, key, [](const GgufValue& e) { return e.is_integer(); }, "integers"));
  std::vector<int64_t> out;
  out.reserve(array->size());
  for (const GgufValue& e : *array) out.push_back(e.as_int());
  return out;
}

int64_t GgufFile::get_int_or(const std::string& key, int64_t fallback) const {
  auto v = get_int(key);
  return v.ok() ? v.value() : fallback;
}

double GgufFile::get_float_or(const std::string& key, double fallback) const {
  auto v = get_float(key);
  return v.ok() ? v.value() : fallback;
}

bool GgufFile::get_bool_or(const std::string& key, bool fallback) const {
  const GgufValue* value = find(key);
  if (value == nullptr) return fallback;
  if (value->type == GgufValueType::BOOL) return std::get<bool>(value->data);
  if (value->is_integer()) return value->as_int() != 0;
  return fallback;
}

Expected<std::vector<float>> GgufFile::dequantize(const GgufTensorInfo& info) const {
  const GgmlTypeTraits* traits = find_ggml_type(info.type_id);
  if (traits == nullptr || info.data == nullptr) {
    return make_error("{}: tensor '{}' has type {} which lowbit cannot decode", path(), info.name,
                      ggml_type_name(info.type_id));
  }
  const int64_t n = info.n_elements();
  std::vector<float> out(static_cast<size_t>(n));
  traits->dequantize(info.data, out.data(), n / traits->block_size);
  file_.drop_pages(info.data, info.n_bytes);  // `out` is the copy; the mapped pages would double the resident size
  return out;
}

}  // namespace lowbit
