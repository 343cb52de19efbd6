// GGUF v3 writer: metadata of every value type and tensors of any ggml type
// whose bytes the caller provides. Output goes to a temporary name and is
// renamed when complete.
//
// Two ways to write: GgufWriter alone holds every tensor's bytes and writes the
// whole image (small files, headers); GgufStreamWriter writes a file whose tensors
// were declared (name, shape, type) up front and streams each tensor's bytes in
// declaration order, so a model is never held in memory whole.
#pragma once

#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

#include "core/atomic_file_writer.h"
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
  // A tensor whose bytes GgufStreamWriter writes later; same checks as add_tensor
  // except for the bytes. A writer with declared tensors can only stream.
  Status declare_tensor(const std::string& name, const std::vector<int64_t>& dims, uint32_t type_id);

  // The complete file image (every tensor added with its bytes).
  std::string serialize() const;
  Status write(const std::string& path) const;

  struct Tensor {
    std::string name;
    std::vector<int64_t> dims;
    uint32_t type_id;
    uint64_t n_bytes;            // storage size of the type and shape
    std::vector<uint8_t> bytes;  // empty for declared tensors
  };
  const std::vector<Tensor>& tensors() const { return tensors_; }
  uint64_t alignment() const { return alignment_; }
  // Magic, counts, metadata and tensor infos, zero-padded to the alignment: the
  // bytes before the first tensor's data.
  std::string serialize_header() const;

 private:
  Expected<uint64_t> checked_size(const std::string& name, const std::vector<int64_t>& dims, uint32_t type_id) const;

  uint64_t alignment_;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<Tensor> tensors_;
};

// Writes `path`.tmp: the header of a GgufWriter whose tensors are declared, then
// each tensor's bytes in declaration order (write_tensor checks the name and the
// size), and renames it to `path` in finish(). Destroyed unfinished, it removes
// the temporary file, so a failed export leaves nothing that looks valid.
class GgufStreamWriter {
 public:
  static Expected<GgufStreamWriter> create(const std::string& path, const GgufWriter& layout);

  GgufStreamWriter(GgufStreamWriter&& other) noexcept = default;
  GgufStreamWriter& operator=(GgufStreamWriter&&) = delete;
  GgufStreamWriter(const GgufStreamWriter&) = delete;

  // The next declared tensor's data; `name` must be that tensor's.
  Status write_tensor(const std::string& name, std::span<const uint8_t> bytes);
  // Every tensor written: flushes, closes and renames into place.
  Status finish();

  uint64_t bytes_written() const { return file_.offset(); }

 private:
  GgufStreamWriter(AtomicFileWriter file, std::vector<GgufWriter::Tensor> tensors, uint64_t alignment)
      : file_(std::move(file)), tensors_(std::move(tensors)), alignment_(alignment) {}

  AtomicFileWriter file_;
  std::vector<GgufWriter::Tensor> tensors_;  // declared: name, dims, type, size (no bytes)
  uint64_t alignment_;
  size_t next_ = 0;
};

}  // namespace lowbit
