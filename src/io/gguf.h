// GGUF v2/v3 reader (https://github.com/ggerganov/ggml/blob/master/docs/gguf.md).
// Layout: magic "GGUF", u32 version, u64 tensor count, u64 metadata count,
// metadata key/values, tensor infos (name, n_dims, dims[ne0 fastest], type, offset),
// padding to `general.alignment` (default 32), then tensor data.
// The file is memory-mapped; tensor data pointers point into the mapping and every
// tensor's byte range is checked against the file size at open.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "core/mapped_file.h"
#include "core/status.h"
#include "io/ggml_types.h"

namespace lowbit {

enum class GgufValueType : uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};

const char* gguf_value_type_name(GgufValueType type);

struct GgufValue;
using GgufArray = std::vector<GgufValue>;

// One metadata value. Integers of every width are held as int64/uint64, floats as
// double; `type` keeps the type written in the file.
struct GgufValue {
  GgufValueType type = GgufValueType::UINT8;
  std::variant<uint64_t, int64_t, double, bool, std::string, std::shared_ptr<GgufArray>> data;
  GgufValueType element_type = GgufValueType::UINT8;  // for arrays

  bool is_integer() const;
  bool is_float() const;
  int64_t as_int() const;  // valid if is_integer()
  double as_double() const;  // valid if is_integer() || is_float()
  const std::string& as_string() const;
  const GgufArray& as_array() const;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> dims;  // ne[0] is the fastest-varying (row length)
  uint32_t type_id = 0;
  uint64_t offset = 0;        // relative to the data section
  const uint8_t* data = nullptr;
  uint64_t n_bytes = 0;
  int64_t element_count = 0;  // product of dims; GgufFile::open rejects one that overflows int64

  int64_t n_elements() const { return element_count; }
};

class GgufFile {
 public:
  static Expected<GgufFile> open(const std::string& path);

  const std::string& path() const { return file_.path(); }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t file_size() const { return file_.size(); }
  const std::map<std::string, GgufValue>& metadata() const { return metadata_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }

  const GgufValue* find(const std::string& key) const;
  const GgufTensorInfo* find_tensor(const std::string& name) const;

  // Typed metadata access with errors naming file and key.
  Expected<int64_t> get_int(const std::string& key) const;
  Expected<double> get_float(const std::string& key) const;
  Expected<std::string> get_string(const std::string& key) const;
  Expected<std::vector<std::string>> get_string_array(const std::string& key) const;
  Expected<std::vector<double>> get_float_array(const std::string& key) const;
  Expected<std::vector<int64_t>> get_int_array(const std::string& key) const;
  int64_t get_int_or(const std::string& key, int64_t fallback) const;
  double get_float_or(const std::string& key, double fallback) const;
  // A BOOL, or an integer read as != 0; `fallback` when absent or of another type.
  bool get_bool_or(const std::string& key, bool fallback) const;

  // Dequantizes a whole tensor to FP32 ([n_elements], row-major, ne0 fastest), then
  // drops the tensor's mapped pages from the resident set (MappedFile::drop_pages).
  Expected<std::vector<float>> dequantize(const GgufTensorInfo& info) const;

 private:
  MappedFile file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::map<std::string, GgufValue> metadata_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

}  // namespace lowbit
