// Safetensors reader and writer (https://github.com/huggingface/safetensors).
// Layout: u64 little-endian header length N, N bytes of UTF-8 JSON (may be padded
// with spaces), then the data buffer. The JSON maps each tensor name to
//   {"dtype": "BF16", "shape": [rows, cols], "data_offsets": [begin, end]}
// with offsets relative to the start of the data buffer, plus an optional
// "__metadata__" object of string -> string.
// The file is memory-mapped; at open every tensor's byte range is checked against
// the file size and against dtype size x element count, so a truncated or
// inconsistent file fails with an error naming the file and tensor.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/checked_math.h"
#include "core/mapped_file.h"
#include "core/status.h"

namespace lowbit {

// Every dtype of the safetensors spec. Only F32, F16 and BF16 convert to FP32;
// the others are recognised so their sizes can be checked and errors can name them.
enum class SafetensorsDtype {
  kBool, kU8, kI8, kF8_E5M2, kF8_E4M3, kI16, kU16, kF16, kBF16,
  kI32, kU32, kF32, kF64, kI64, kU64,
};

struct SafetensorsDtypeInfo {
  SafetensorsDtype dtype;
  const char* name;        // as written in the header, e.g. "BF16"
  const char* short_name;  // lower case as lowbit prints dtypes, e.g. "bf16"
  uint32_t bytes;          // per element
  bool converts_to_f32;    // F32, F16, BF16
};

const SafetensorsDtypeInfo& safetensors_dtype_info(SafetensorsDtype dtype);
// Null for an unknown name.
const SafetensorsDtypeInfo* find_safetensors_dtype(const std::string& name);

struct SafetensorsTensor {
  std::string name;
  SafetensorsDtype dtype = SafetensorsDtype::kF32;
  std::vector<int64_t> shape;  // outermost first, as PyTorch
  const uint8_t* data = nullptr;  // into the mapping
  uint64_t n_bytes = 0;

  // Product of shape. SafetensorsFile::open rejects a shape whose product (or any
  // partial product) overflows int64, so for a tensor it returns this never throws.
  int64_t n_elements() const { return checked_product(shape).value(); }
};

class SafetensorsFile {
 public:
  static Expected<SafetensorsFile> open(const std::string& path);

  const std::string& path() const { return file_.path(); }
  uint64_t file_size() const { return file_.size(); }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // In header order of their data offsets.
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const SafetensorsTensor* find(const std::string& name) const;

  // Converts one F32/F16/BF16 tensor to FP32: [n_elements], row-major.
  Expected<std::vector<float>> to_f32(const SafetensorsTensor& tensor) const;

 private:
  MappedFile file_;
  std::map<std::string, std::string> metadata_;
  std::vector<SafetensorsTensor> tensors_;
  std::map<std::string, size_t> index_;
};

// One tensor to write: FP32 values stored as `dtype` (F32, F16 or BF16; F16 and
// BF16 round to nearest even). `values` must stay alive during the write.
struct SafetensorsWriteTensor {
  std::string name;
  SafetensorsDtype dtype = SafetensorsDtype::kF32;
  std::vector<int64_t> shape;
  const float* values = nullptr;  // [product of shape]
};

// Writes a safetensors file (io/safetensors_writer.cpp): header padded with spaces to a multiple of 8 bytes,
// tensors laid out in the given order. Written to path + ".tmp", then renamed.
Status write_safetensors(const std::string& path, const std::vector<SafetensorsWriteTensor>& tensors,
                         const std::map<std::string, std::string>& metadata = {});

}  // namespace lowbit
