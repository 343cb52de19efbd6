#include "io/gguf_writer.h"

#include <cstring>

#include "core/mapped_file.h"

namespace lowbit {
namespace {

template <typename T>
void put(std::string& out, T value) {
  char raw[sizeof(T)];
  std::memcpy(raw, &value, sizeof(T));
  out.append(raw, sizeof(T));
}

void put_string(std::string& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out += s;
}

void put_value_payload(std::string& out, const GgufValue& v) {
  switch (v.type) {
    case GgufValueType::UINT8: put<uint8_t>(out, static_cast<uint8_t>(v.as_int())); break;
    case GgufValueType::INT8: put<int8_t>(out, static_cast<int8_t>(v.as_int())); break;
    case GgufValueType::UINT16: put<uint16_t>(out, static_cast<uint16_t>(v.as_int())); break;
    case GgufValueType::INT16: put<int16_t>(out, static_cast<int16_t>(v.as_int())); break;
    case GgufValueType::UINT32: put<uint32_t>(out, static_cast<uint32_t>(v.as_int())); break;
    case GgufValueType::INT32: put<int32_t>(out, static_cast<int32_t>(v.as_int())); break;
    case GgufValueType::UINT64: put<uint64_t>(out, static_cast<uint64_t>(v.as_int())); break;
    case GgufValueType::INT64: put<int64_t>(out, v.as_int()); break;
    case GgufValueType::FLOAT32: put<float>(out, static_cast<float>(v.as_double())); break;
    case GgufValueType::FLOAT64: put<double>(out, v.as_double()); break;
    case GgufValueType::BOOL: put<uint8_t>(out, std::get<bool>(v.data) ? 1 : 0); break;
    case GgufValueType::STRING: put_string(out, v.as_string()); break;
    case GgufValueType::ARRAY: {
      put<uint32_t>(out, static_cast<uint32_t>(v.element_type));
      put<uint64_t>(out, v.as_array().size());
      for (const GgufValue& e : v.as_array()) put_value_payload(out, e);
      break;
    }
  }
}

GgufValue scalar(GgufValueType type, std::variant<uint64_t, int64_t, double, bool, std::string> data) {
  GgufValue v;
  v.type = type;
  std::visit([&](auto&& x) { v.data = x; }, data);
  return v;
}

template <typename T, typename Make>
GgufValue array_of(GgufValueType element_type, const std::vector<T>& values, Make make) {
  auto array = std::make_shared<GgufArray>();
  for (const T& x : values) array->push_back(make(x));
  GgufValue v;
  v.type = GgufValueType::ARRAY;
  v.element_type = element_type;
  v.data = std::move(array);
  return v;
}

}  // namespace

void GgufWriter::set(const std::string& key, GgufValue value) {
  for (auto& kv : metadata_) {
    if (kv.first == key) {
      kv.second = std::move(value);
      return;
    }
  }
  metadata_.emplace_back(key, std::move(value));
}

void GgufWriter::set_u32(const std::string& key, uint32_t v) { set(key, scalar(GgufValueType::UINT32, uint64_t{v})); }
void GgufWriter::set_i32(const std::string& key, int32_t v) { set(key, scalar(GgufValueType::INT32, int64_t{v})); }
void GgufWriter::set_f32(const std::string& key, float v) { set(key, scalar(GgufValueType::FLOAT32, double{v})); }
void GgufWriter::set_bool(const std::string& key, bool v) { set(key, scalar(GgufValueType::BOOL, v)); }
void GgufWriter::set_string(const std::string& key, const std::string& v) {
  set(key, scalar(GgufValueType::STRING, v));
}
void GgufWriter::set_string_array(const std::string& key, const std::vector<std::string>& values) {
  set(key, array_of(GgufValueType::STRING, values,
                    [](const std::string& s) { return scalar(GgufValueType::STRING, s); }));
}
void GgufWriter::set_f32_array(const std::string& key, const std::vector<float>& values) {
  set(key, array_of(GgufValueType::FLOAT32, values, [](float x) { return scalar(GgufValueType::FLOAT32, double{x}); }));
}
void GgufWriter::set_i32_array(const std::string& key, const std::vector<int32_t>& values) {
  set(key, array_of(GgufValueType::INT32, values, [](int32_t x) { return scalar(GgufValueType::INT32, int64_t{x}); }));
}

Expected<uint64_t> GgufWriter::checked_size(const std::string& name, const std::vector<int64_t>& dims,
                                            uint32_t type_id) const {
  const GgmlTypeTraits* traits = find_ggml_type(type_id);
  if (traits == nullptr) {
    return make_error("gguf writer: tensor '{}': unsupported type {}", name, ggml_type_name(type_id));
  }
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d <= 0) return make_error("gguf writer: tensor '{}': dimension {} is not positive", name, d);
    n *= d;
  }
  if (dims.empty() || dims.size() > 4 || dims[0] % traits->block_size != 0) {
    return make_error("gguf writer: tensor '{}': {} dims, row length {} (must be 1-4 dims, rows a multiple of {})",
                      name, dims.size(), dims.empty() ? 0 : dims[0], traits->block_size);
  }
  for (const Tensor& t : tensors_) {
    if (t.name == name) return make_error("gguf writer: tensor '{}' added twice", name);
  }
  return static_cast<uint64_t>(n / traits->block_size) * traits->bytes_per_block;
}

Status GgufWriter::add_tensor(const std::string& name, const std::vector<int64_t>& dims, uint32_t type_id,
                              std::vector<uint8_t> bytes) {
  LB_ASSIGN_OR_RETURN(uint64_t expected, checked_size(name, dims, type_id));
  if (bytes.size() != expected) {
    return make_error("gguf writer: tensor '{}': {} bytes given, {} needs {}", name, bytes.size(),
                      ggml_type_name(type_id), expected);
  }
  tensors_.push_back({name, dims, type_id, expected, std::move(bytes)});
  return Status::ok_status();
}

Status GgufWriter::declare_tensor(const std::string& name, const std::vector<int64_t>& dims, uint32_t type_id) {
  LB_ASSIGN_OR_RETURN(uint64_t size, checked_size(name, dims, type_id));
  tensors_.push_back({name, dims, type_id, size, {}});
  return Status::ok_status();
}

Status GgufWriter::add_f32_tensor(const std::string& name, const std::vector<int64_t>& dims,
                                  const std::vector<float>& values) {
  std::vector<uint8_t> bytes(values.size() * sizeof(float));
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return add_tensor(name, dims, static_cast<uint32_t>(GgmlType::F32), std::move(bytes));
}

std::string GgufWriter::serialize_header() const {
  std::string out;
  put<uint32_t>(out, 0x46554747);  // "GGUF"
  put<uint32_t>(out, 3);
  put<uint64_t>(out, tensors_.size());
  const bool custom_alignment = alignment_ != 32;
  put<uint64_t>(out, metadata_.size() + (custom_alignment ? 1 : 0));
  if (custom_alignment) {
    put_string(out, "general.alignment");
    put<uint32_t>(out, static_cast<uint32_t>(GgufValueType::UINT32));
    put<uint32_t>(out, static_cast<uint32_t>(alignment_));
  }
  for (const auto& [key, value] : metadata_) {
    put_string(out, key);
    put<uint32_t>(out, static_cast<uint32_t>(value.type));
    put_value_payload(out, value);
  }
  uint64_t offset = 0;
  for (const Tensor& t : tensors_) {
    put_string(out, t.name);
    put<uint32_t>(out, static_cast<uint32_t>(t.dims.size()));
    for (int64_t d : t.dims) put<uint64_t>(out, static_cast<uint64_t>(d));
    put<uint32_t>(out, t.type_id);
    put<uint64_t>(out, offset);
    offset += (t.n_bytes + alignment_ - 1) / alignment_ * alignment_;
  }
  out.resize((out.size() + alignment_ - 1) / alignment_ * alignment_, '\0');
  return out;
}

std::string GgufWriter::serialize() const {
  std::string out = serialize_header();
  for (const Tensor& t : tensors_) {
    out.append(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size());
    out.resize((out.size() + alignment_ - 1) / alignment_ * alignment_, '\0');
  }
  return out;
}

Status GgufWriter::write(const std::string& path) const {
  for (const Tensor& t : tensors_) {
    if (t.bytes.size() != t.n_bytes) return make_error("{}: tensor '{}' was declared: stream it", path, t.name);
  }
  return write_file_atomic(path, serialize());
}

// ---------------------------------------------------------------------------- streaming

Expected<GgufStreamWriter> GgufStreamWriter::create(const std::string& path, const GgufWriter& layout) {
  LB_ASSIGN_OR_RETURN(AtomicFileWriter file, AtomicFileWriter::create(path));
  std::vector<GgufWriter::Tensor> tensors;
  for (const GgufWriter::Tensor& t : layout.tensors()) tensors.push_back({t.name, t.dims, t.type_id, t.n_bytes, {}});
  GgufStreamWriter writer(std::move(file), std::move(tensors), layout.alignment());
  const std::string header = layout.serialize_header();
  LB_RETURN_IF_ERROR(writer.file_.write(header.data(), header.size()));
  return writer;
}

Status GgufStreamWriter::write_tensor(const std::string& name, std::span<const uint8_t> bytes) {
  const std::string& path = file_.path();
  if (next_ >= tensors_.size()) return make_error("{}: tensor '{}' was not declared", path, name);
  const GgufWriter::Tensor& t = tensors_[next_];
  if (t.name != name) return make_error("{}: tensor '{}' written where '{}' was declared", path, name, t.name);
  if (bytes.size() != t.n_bytes) {
    return make_error("{}: tensor '{}': {} bytes given, {} needs {}", path, name, bytes.size(),
                      ggml_type_name(t.type_id), t.n_bytes);
  }
  LB_RETURN_IF_ERROR(file_.write(bytes.data(), bytes.size()));
  LB_RETURN_IF_ERROR(file_.pad_to(alignment_));
  ++next_;
  return Status::ok_status();
}

Status GgufStreamWriter::finish() {
  if (next_ != tensors_.size()) {
    return make_error("{}: {} of {} declared tensors written", file_.path(), next_, tensors_.size());
  }
  return file_.commit();
}

}  // namespace lowbit
