// GGUF v3 writer: metadata of every value type and tensors of any ggml type
// whose bytes the caller provides. Output goes to a temporary name and is
// renamed when complete.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "io/gguf.h"

namespace lowbit {

class GgufWriter {
 public:
  explicit GgufWriter(uint64_t alignment = 32) : alignment_(alignment) {}

  void set(const std::string& key, GgufValue value);
  void set_u32(const std::string& key, uint32_t v);
  void set_i32(const std::string& key, int32_t v);
  void set_f32(const std::string& key, float v);
  void set_bool(const std::string& key, bool v);
  void set_string(const std::string& key, const std::string& v);
  void set_string_array(const std::string& key, const std::vector<std::string>& values);
  void set_f32_array(const std::string& key, const std::vector<float>& values);
  void set_i32_array(const std::string& key, const std::vector<int32_t>& values);

  // dims: ne0 (fastest) first. bytes must hold exactly the type's storage size.
  Status add_tensor(const std::string& name, const std::vector<int64_t>& dims, uint32_t type_id,
                    std::vector<uint8_t> bytes);
  Status add_f32_tensor(const std::string& name, const std::vector<int64_t>& dims, const std::vector<float>& values);

  // The complete file image.
  std::string serialize() const;
  Status write(const std::string& path) const;

 private:
  struct Tensor {
    std::string name;
    std::vector<int64_t> dims;
    uint32_t type_id;
    std::vector<uint8_t> bytes;
  };
  uint64_t alignment_;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<Tensor> tensors_;
};

}  // namespace lowbit
