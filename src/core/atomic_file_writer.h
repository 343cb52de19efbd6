// A file written front to back under `path`.tmp and renamed to `path` by
// commit() once flushed to disk, so an interrupted write leaves at most the .tmp
// file, never a partial file under the real name. Destroyed uncommitted, the
// temporary file is removed. Streaming writers (lowbit's container, GGUF) build
// on it; small files use write_file_atomic (mapped_file.h).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "core/interrupt_cleanup.h"
#include "core/status.h"

namespace lowbit {

// Whether a file can be created at `path` (by AtomicFileWriter or
// write_file_atomic): its folder exists and is writable, and `path` is not a
// folder. Commands check their outputs with it before any long work, so a run
// does not do all its work and then fail to write. The error says why, without
// the path (the caller names the flag and path).
Status check_output_file_path(const std::string& path);

// Whether `path` can be used as an output folder: an existing writable folder, or
// a path whose nearest existing ancestor is a writable folder (it is created).
Status check_output_folder_path(const std::string& path);

class AtomicFileWriter {
 public:
  // Creates `path`.tmp, truncating a stale one.
  static Expected<AtomicFileWriter> create(const std::string& path);
  // Reopens `path`.tmp that an earlier process left, cut to its first `length`
  // bytes, to append after them (a resumed quantization,
  // pipeline/quantize_checkpoint.h). Error when it is shorter than `length`. It is
  // not registered for removal on interrupt: the resumed run's checkpoint needs it.
  static Expected<AtomicFileWriter> reopen(const std::string& path, uint64_t length);

  AtomicFileWriter(AtomicFileWriter&& other) noexcept;
  AtomicFileWriter& operator=(AtomicFileWriter&&) = delete;
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  ~AtomicFileWriter();

  Status write(const void* data, uint64_t bytes);
  // The same bytes, for a large block (a checkpoint's hidden states: 604 MB for 128 ×
  // 2048 tokens of a 576-wide model): its 4 KiB-aligned middle goes past the page cache
  // (O_DIRECT through a second descriptor, from an aligned 8 MiB bounce buffer), so the
  // later fsync has no gigabyte of dirty pages to flush: here a buffered 600 MB write
  // with fdatasync cost 3.5 s of kernel CPU, the O_DIRECT one 0.2 s (dd). The unaligned
  // ends, small blocks and file systems without O_DIRECT (tmpfs) take write().
  Status write_direct(const void* data, uint64_t bytes);
  // Zero bytes up to the next multiple of `alignment`.
  Status pad_to(uint64_t alignment);
  // Flushes (fsync), closes and renames the file into place.
  Status commit();
  // Flushes what was written to the disk (fsync) and goes on writing: a
  // checkpoint may then record the first offset() bytes as final.
  Status sync();
  // From now on SIGINT/SIGTERM leave the temporary file (a checkpoint refers to
  // it); error paths and the destructor still remove it.
  void keep_on_interrupt() { on_interrupt_.release(); }

  uint64_t offset() const { return offset_; }  // bytes written so far
  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_; }

 private:
  AtomicFileWriter(std::string path, std::string temp, std::FILE* file, RemoveOnInterrupt on_interrupt)
      : path_(std::move(path)), temp_(std::move(temp)), file_(file), on_interrupt_(std::move(on_interrupt)) {}
  void abandon();

  std::string path_;
  std::string temp_;  // empty once committed or moved from
  std::FILE* file_ = nullptr;
  uint64_t offset_ = 0;
  RemoveOnInterrupt on_interrupt_;  // temp_ while it exists
};

}  // namespace lowbit
