// Safetensors writer for tensors of any dtype (io/safetensors.h describes the
// layout), streamed: the header is written first from each tensor's name, dtype
// and shape, then the data of each tensor in header order, so a model larger
// than memory is written one tensor at a time.
//
// The file goes to `path`.tmp and is renamed over `path` by finish()
// (core/atomic_file_writer.h); a writer destroyed before finish() removes its
// temporary file, so a failed export never leaves a truncated file that looks valid.
//
// Hugging Face shards a checkpoint into files of at most a few GB
// ("model-00001-of-00003.safetensors") with model.safetensors.index.json
// mapping each tensor name to its file; plan_safetensors_shards() splits a tensor
// list that way.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/atomic_file_writer.h"
#include "core/status.h"
#include "io/safetensors.h"

namespace lowbit {

// One tensor of a file to write: what the header records.
struct SafetensorsEntry {
  std::string name;
  SafetensorsDtype dtype = SafetensorsDtype::kF32;
  std::vector<int64_t> shape;  // outermost first; {} = a scalar

  // n_elements * dtype bytes, or an error for negative dimensions / overflow.
  Expected<uint64_t> byte_size() const;
};

class SafetensorsStreamWriter {
 public:
  // Writes the header of `entries` (names unique, not "__metadata__") to path.tmp.
  static Expected<SafetensorsStreamWriter> create(const std::string& path, std::vector<SafetensorsEntry> entries,
                                                  const std::map<std::string, std::string>& metadata = {});
  SafetensorsStreamWriter(SafetensorsStreamWriter&&) noexcept = default;
  SafetensorsStreamWriter& operator=(SafetensorsStreamWriter&&) = delete;
  SafetensorsStreamWriter(const SafetensorsStreamWriter&) = delete;

  // The name of the next tensor to append ("" once all are written).
  const std::string& next_name() const;
  // Appends the raw little-endian bytes of the next tensor; `name` must be that
  // tensor and `bytes` exactly its size.
  Status append(const std::string& name, std::span<const uint8_t> bytes);
  // Checks that every tensor was appended, flushes and renames into place.
  Status finish();

  const std::string& path() const { return path_; }
  uint64_t data_bytes() const { return data_bytes_; }

 private:
  SafetensorsStreamWriter() = default;

  std::string path_;
  std::optional<AtomicFileWriter> file_;  // empty once finished
  std::vector<SafetensorsEntry> entries_;
  std::vector<uint64_t> sizes_;  // bytes of each entry
  size_t next_ = 0;
  uint64_t data_bytes_ = 0;
};

// Tensors split into consecutive shards of at most `max_shard_bytes` of data each
// (a tensor larger than that gets a shard of its own). Returns, per shard, the
// indices into `entries`.
Expected<std::vector<std::vector<size_t>>> plan_safetensors_shards(const std::vector<SafetensorsEntry>& entries,
                                                                   uint64_t max_shard_bytes);

// Hugging Face's shard file name: "model.safetensors" for a single shard, else
// "model-00002-of-00005.safetensors" (1-based index).
std::string safetensors_shard_name(size_t index, size_t n_shards);

}  // namespace lowbit
