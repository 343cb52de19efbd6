// Read-only memory mapping of a whole file (RAII). Loaders parse straight from the
// mapping so a multi-GB model costs no copy until a tensor is dequantized.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/status.h"

namespace lowbit {

class MappedFile {
 public:
  static Expected<MappedFile> open(const std::string& path);

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

  // Tells the kernel that the bytes [begin, begin + n) of the mapping are no longer
  // needed: the whole pages inside the range leave this process's resident set
  // (their contents stay readable; touching them again reads the file). A loader
  // calls it once a tensor has been converted, so a model is never resident twice
  // (mapped and converted). A range outside the mapping is ignored.
  void drop_pages(const uint8_t* begin, size_t n) const;

 private:
  void release();
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

// Reads a whole (small) text file, e.g. config.json or a corpus.
Expected<std::string> read_text_file(const std::string& path);

// Writes `contents` to `path` through a temporary name and a rename, so a crash
// never leaves a partial file that looks valid.
Status write_file_atomic(const std::string& path, const std::string& contents);

}  // namespace lowbit
