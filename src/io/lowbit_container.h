// The container of a lowbit model file (docs/FORMAT.md): written front to back in
// one pass, so a quantizer can stream tensors out as it produces them.
//
//   [0, D)        GGUF v3 image with metadata only (no tensors): general.architecture
//                 = "lowbit", lowbit.* keys, and tokenizer.* keys copied from the source,
//                 so GGUF tools and lowbit's GGUF tokenizer loader read it as is
//   [D, I)        blobs (raw tensor bytes), each starting at a multiple of 64
//   [I, I + n)    the index: UTF-8 JSON naming each tensor and its blobs by offset
//   last 40 bytes footer: u64 D, u64 I, u64 n, u32 container version, u32 0, "LBQ-END\n"
//
// All integers are little-endian. The writer writes `path`.tmp and renames it to
// `path` only after the footer is flushed, so an interrupted write leaves at most a
// `.tmp` file, and a truncated file has no footer: the reader rejects it by name.
#pragma once

#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <span>
#include <string>

#include "core/atomic_file_writer.h"
#include "core/mapped_file.h"
#include "core/status.h"
#include "io/gguf.h"
#include "io/gguf_writer.h"

namespace lowbit {

constexpr uint32_t kLowbitContainerVersion = 1;
constexpr uint64_t kLowbitBlobAlignment = 64;
constexpr uint64_t kLowbitFooterBytes = 40;
constexpr char kLowbitFooterMagic[9] = "LBQ-END\n";
constexpr const char* kLowbitArchitecture = "lowbit";

// Where a blob lies: absolute byte offset in the file and length.
struct BlobRef {
  uint64_t offset = 0;
  uint64_t bytes = 0;
};
nlohmann::json blob_json(const BlobRef& ref);

class ContainerWriter {
 public:
  // Creates `path`.tmp (truncating a stale one) and writes the header image.
  // general.architecture is set to "lowbit" here.
  static Expected<ContainerWriter> create(const std::string& path, GgufWriter header);
  // Continues `path`.tmp of an earlier process after its first `length` bytes
  // (AtomicFileWriter::reopen); `data_begin` is the end of its header image as
  // data_begin() returned it then.
  static Expected<ContainerWriter> reopen(const std::string& path, uint64_t data_begin, uint64_t length);

  ContainerWriter(ContainerWriter&& other) noexcept = default;
  ContainerWriter& operator=(ContainerWriter&&) = delete;
  ContainerWriter(const ContainerWriter&) = delete;
  // Destroyed before finish() succeeded, it removes the temporary file.

  // Appends `bytes` bytes at the next 64-byte boundary.
  Expected<BlobRef> append(const void* data, uint64_t bytes);
  // Writes the index and the footer, flushes to disk and renames the file into place.
  Status finish(const nlohmann::json& index);

  // Flushes the bytes so far to the disk (AtomicFileWriter::sync).
  Status sync() { return file_.sync(); }
  // SIGINT/SIGTERM leave the temporary file from now on (AtomicFileWriter::keep_on_interrupt).
  void keep_on_interrupt() { file_.keep_on_interrupt(); }

  const std::string& temp_path() const { return file_.temp_path(); }
  uint64_t bytes_written() const { return file_.offset(); }
  uint64_t data_begin() const { return data_begin_; }

 private:
  explicit ContainerWriter(AtomicFileWriter file) : file_(std::move(file)) {}

  AtomicFileWriter file_;
  uint64_t data_begin_ = 0;  // end of the header image, rounded up to 64
};

class ContainerReader {
 public:
  // Checks the footer (a truncated or unfinished file fails here), the index
  // bounds and the header image.
  static Expected<ContainerReader> open(const std::string& path);

  const std::string& path() const { return file_.path(); }
  uint64_t file_size() const { return file_.size(); }
  const GgufFile& header() const { return header_; }
  const nlohmann::json& index() const { return index_; }

  // The bytes of a blob reference {"offset": o, "bytes": n} taken from the index,
  // checked to lie in the blob section; `what` names it in errors.
  Expected<std::span<const uint8_t>> blob(const nlohmann::json& ref, const std::string& what) const;
  // Drops the resident pages of bytes returned by blob() (MappedFile::drop_pages).
  void drop_pages(std::span<const uint8_t> bytes) const { file_.drop_pages(bytes.data(), bytes.size()); }

 private:
  ContainerReader(MappedFile file, GgufFile header) : file_(std::move(file)), header_(std::move(header)) {}

  MappedFile file_;
  GgufFile header_;
  nlohmann::json index_;
  uint64_t data_begin_ = 0;
  uint64_t data_end_ = 0;
};

// Whether an opened GGUF file is the header of a lowbit container.
bool is_lowbit_container(const GgufFile& gguf);

}  // namespace lowbit
