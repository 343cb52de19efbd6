#include "io/safetensors.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <limits>
#include <optional>

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "core/half.h"
#include "io/untrusted_json.h"

namespace lowbit {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; lowbit reads it in place");

namespace {

using Dt = SafetensorsDtype;

constexpr std::array<SafetensorsDtypeInfo, 15> kDtypes = {{
    {Dt::kBool, "BOOL", "bool", 1, false},
    {Dt::kU8, "U8", "u8", 1, false},
    {Dt::kI8, "I8", "i8", 1, false},
    {Dt::kF8_E5M2, "F8_E5M2", "f8_e5m2", 1, false},
    {Dt::kF8_E4M3, "F8_E4M3", "f8_e4m3", 1, false},
    {Dt::kI16, "I16", "i16", 2, false},
    {Dt::kU16, "U16", "u16", 2, false},
    {Dt::kF16, "F16", "f16", 2, true},
    {Dt::kBF16, "BF16", "bf16", 2, true},
    {Dt::kI32, "I32", "i32", 4, false},
    {Dt::kU32, "U32", "u32", 4, false},
    {Dt::kF32, "F32", "f32", 4, true},
    {Dt::kF64, "F64", "f64", 8, false},
    {Dt::kI64, "I64", "i64", 8, false},
    {Dt::kU64, "U64", "u64", 8, false},
}};

constexpr size_t kHeaderPrefixBytes = 8;  // u64 header length

// Reads a JSON number that must be a non-negative integer.
bool as_u64(const nlohmann::json& v, uint64_t* out) {
  if (v.is_number_unsigned()) {
    *out = v.get<uint64_t>();
    return true;
  }
  if (v.is_number_integer() && v.get<int64_t>() >= 0) {
    *out = static_cast<uint64_t>(v.get<int64_t>());
    return true;
  }
  return false;
}

// Parses one tensor entry of the header; `buffer_size` is the size of the data
// buffer that data_offsets index into.
Expected<SafetensorsTensor> parse_entry(const std::string& source, const std::string& name,
                                        const nlohmann::json& entry, const uint8_t* buffer,
                                        uint64_t buffer_size) {
  if (!entry.is_object()) return make_error("{}: tensor '{}': header entry is not an object", source, name);
  auto dtype_it = entry.find("dtype");
  auto shape_it = entry.find("shape");
  auto offsets_it = entry.find("data_offsets");
  if (dtype_it == entry.end() || !dtype_it->is_string()) {
    return make_error("{}: tensor '{}': missing or non-string \"dtype\"", source, name);
  }
  if (shape_it == entry.end() || !shape_it->is_array()) {
    return make_error("{}: tensor '{}': missing or non-array \"shape\"", source, name);
  }
  if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2) {
    return make_error("{}: tensor '{}': \"data_offsets\" must be an array [begin, end]", source, name);
  }
  const std::string dtype_name = dtype_it->get<std::string>();
  const SafetensorsDtypeInfo* info = find_safetensors_dtype(dtype_name);
  if (info == nullptr) return make_error("{}: tensor '{}': unknown dtype '{}'", source, name, dtype_name);

  SafetensorsTensor t;
  t.name = name;
  t.dtype = info->dtype;
  for (const auto& d : *shape_it) {
    uint64_t dim = 0;
    if (!as_u64(d, &dim) || dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return make_error("{}: tensor '{}': shape entry {} is not a non-negative integer", source, name,
                        describe_json(d));
    }
    t.shape.push_back(static_cast<int64_t>(dim));
  }
  // Every partial product is checked, so [2^62, 3, 0] overflows even though its product is 0.
  const std::optional<int64_t> n_elements = checked_product(t.shape);
  const std::optional<int64_t> n_bytes =
      n_elements ? checked_mul<int64_t>(*n_elements, static_cast<int64_t>(info->bytes)) : std::nullopt;
  if (!n_bytes) {
    return make_error("{}: tensor '{}': shape [{}] overflows (more than 2^63 bytes)", source, name,
                      fmt::join(t.shape, ","));
  }
  uint64_t begin = 0, end = 0;
  if (!as_u64((*offsets_it)[0], &begin) || !as_u64((*offsets_it)[1], &end)) {
    return make_error("{}: tensor '{}': data_offsets [{}, {}] are not non-negative integers", source, name,
                      describe_json((*offsets_it)[0]), describe_json((*offsets_it)[1]));
  }
  if (end < begin) {
    return make_error("{}: tensor '{}': data_offsets [{}, {}] end before begin", source, name, begin, end);
  }
  if (end > buffer_size) {
    return make_error("{}: tensor '{}': data_offsets [{}, {}] run past the end of the data ({} bytes; file truncated?)",
                      source, name, begin, end, buffer_size);
  }
  const uint64_t expected = static_cast<uint64_t>(*n_bytes);
  if (end - begin != expected) {
    return make_error("{}: tensor '{}': data_offsets [{}, {}] hold {} bytes but {} {} needs {}", source, name,
                      begin, end, end - begin, info->name, fmt::format("[{}]", fmt::join(t.shape, ", ")), expected);
  }
  t.data = buffer + begin;
  t.n_bytes = expected;
  return t;
}

}  // namespace

const SafetensorsDtypeInfo& safetensors_dtype_info(SafetensorsDtype dtype) {
  return kDtypes[static_cast<size_t>(dtype)];
}

const SafetensorsDtypeInfo* find_safetensors_dtype(const std::string& name) {
  for (const auto& info : kDtypes) {
    if (name == info.name) return &info;
  }
  return nullptr;
}

Expected<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  SafetensorsFile out;
  LB_ASSIGN_OR_RETURN(out.file_, MappedFile::open(path));
  const uint8_t* base = out.file_.data();
  const uint64_t size = out.file_.size();
  if (size < kHeaderPrefixBytes) {
    return make_error("{}: truncated safetensors file: {} bytes, the header length alone needs 8", path, size);
  }
  uint64_t header_len = 0;
  std::memcpy(&header_len, base, sizeof(header_len));
  if (header_len > size - kHeaderPrefixBytes) {
    return make_error("{}: header length {} runs past the end of the file ({} bytes; truncated or not safetensors)",
                      path, header_len, size);
  }
  const char* header_begin = reinterpret_cast<const char*>(base + kHeaderPrefixBytes);
  if (header_len == 0 || header_begin[0] != '{') {
    return make_error("{}: header does not start with '{{' (not a safetensors file?)", path);
  }
  LB_ASSIGN_OR_RETURN(const nlohmann::json header,
                      parse_untrusted_json(std::string_view(header_begin, header_len), path + ": header"));
  if (!header.is_object()) {
    return make_error("{}: header ({} bytes) is not a valid JSON object", path, header_len);
  }
  const uint8_t* buffer = base + kHeaderPrefixBytes + header_len;
  const uint64_t buffer_size = size - kHeaderPrefixBytes - header_len;

  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) return make_error("{}: \"__metadata__\" is not an object", path);
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string()) return make_error("{}: __metadata__ value of '{}' is not a string", path, mk);
        out.metadata_[mk] = mv.get<std::string>();
      }
      continue;
    }
    LB_ASSIGN_OR_RETURN(SafetensorsTensor t, parse_entry(path, key, value, buffer, buffer_size));
    out.tensors_.push_back(std::move(t));
  }
  std::stable_sort(out.tensors_.begin(), out.tensors_.end(),
                   [](const SafetensorsTensor& a, const SafetensorsTensor& b) { return a.data < b.data; });
  for (size_t i = 0; i < out.tensors_.size(); ++i) out.index_[out.tensors_[i].name] = i;
  return out;
}

const SafetensorsTensor* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

Expected<std::vector<float>> SafetensorsFile::to_f32(const SafetensorsTensor& tensor) const {
  const size_t n = static_cast<size_t>(tensor.n_elements());
  std::vector<float> out(n);
  switch (tensor.dtype) {
    case Dt::kF32:
      // A tensor of zero elements has no bytes (out.data() may be null, and
      // memcpy with a null pointer is undefined even for 0 bytes: fuzz_safetensors).
      if (n != 0) std::memcpy(out.data(), tensor.data, n * sizeof(float));
      file_.drop_pages(tensor.data, tensor.n_bytes);  // `out` is the copy; see MappedFile::drop_pages
      return out;
    case Dt::kF16:
    case Dt::kBF16: {
      const bool bf16 = tensor.dtype == Dt::kBF16;
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, tensor.data + 2 * i, 2);
        out[i] = bf16 ? bf16_to_float(h) : fp16_to_float(h);
      }
      file_.drop_pages(tensor.data, tensor.n_bytes);
      return out;
    }
    default:
      return make_error("{}: tensor '{}' has dtype {}; only F32, F16 and BF16 can be loaded as weights", path(),
                        tensor.name, safetensors_dtype_info(tensor.dtype).name);
  }
}

}  // namespace lowbit
