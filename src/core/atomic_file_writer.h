// A file written front to back under `path`.tmp and renamed to `path` by
// commit() once flushed to disk, so an interrupted write leaves at most the .tmp
// file, never a partial file under the real name. Destroyed uncommitted, the
// temporary file is removed. Streaming writers (lowbit's container, GGUF) build
// on it; small files use write_file_atomic (mapped_file.h).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "core/status.h"

namespace lowbit {

class AtomicFileWriter {
 public:
  // Creates `path`.tmp, truncating a stale one.
  static Expected<AtomicFileWriter> create(const std::string& path);

  AtomicFileWriter(AtomicFileWriter&& other) noexcept;
  AtomicFileWriter& operator=(AtomicFileWriter&&) = delete;
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  ~AtomicFileWriter();

  Status write(const void* data, uint64_t bytes);
  // Zero bytes up to the next multiple of `alignment`.
  Status pad_to(uint64_t alignment);
  // Flushes (fsync), closes and renames the file into place.
  Status commit();

  uint64_t offset() const { return offset_; }  // bytes written so far
  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_; }

 private:
  AtomicFileWriter(std::string path, std::string temp, std::FILE* file)
      : path_(std::move(path)), temp_(std::move(temp)), file_(file) {}
  void abandon();

  std::string path_;
  std::string temp_;  // empty once committed or moved from
  std::FILE* file_ = nullptr;
  uint64_t offset_ = 0;
};

}  // namespace lowbit
