#include "core/atomic_file_writer.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace lowbit {

Expected<AtomicFileWriter> AtomicFileWriter::create(const std::string& path) {
  std::string temp = path + ".tmp";
  std::FILE* file = std::fopen(temp.c_str(), "wb");
  if (file == nullptr) return make_error("{}: cannot create: {}", temp, std::strerror(errno));
  return AtomicFileWriter(path, std::move(temp), file);
}

AtomicFileWriter::AtomicFileWriter(AtomicFileWriter&& other) noexcept
    : path_(std::move(other.path_)), temp_(std::move(other.temp_)), file_(other.file_), offset_(other.offset_) {
  other.file_ = nullptr;
  other.temp_.clear();
}

AtomicFileWriter::~AtomicFileWriter() { abandon(); }

void AtomicFileWriter::abandon() {
  if (file_ != nullptr) {
    std::fclose(file_);
    file_ = nullptr;
  }
  if (!temp_.empty()) {
    std::remove(temp_.c_str());
    temp_.clear();
  }
}

Status AtomicFileWriter::write(const void* data, uint64_t bytes) {
  if (file_ == nullptr) return make_error("{}: write after the file was closed", path_);
  if (bytes > 0 && std::fwrite(data, 1, bytes, file_) != bytes) {
    return make_error("{}: write failed at byte {}: {}", temp_, offset_, std::strerror(errno));
  }
  offset_ += bytes;
  return Status::ok_status();
}

Status AtomicFileWriter::pad_to(uint64_t alignment) {
  const std::vector<uint8_t> zeros((alignment - offset_ % alignment) % alignment, 0);
  return write(zeros.data(), zeros.size());
}

Status AtomicFileWriter::commit() {
  if (file_ == nullptr) return make_error("{}: already closed", path_);
  if (std::fflush(file_) != 0 || fsync(fileno(file_)) != 0) {
    return make_error("{}: cannot flush: {}", temp_, std::strerror(errno));
  }
  const int closed = std::fclose(file_);
  file_ = nullptr;
  if (closed != 0) return make_error("{}: cannot close: {}", temp_, std::strerror(errno));
  if (std::rename(temp_.c_str(), path_.c_str()) != 0) {
    return make_error("{}: cannot rename from {}: {}", path_, temp_, std::strerror(errno));
  }
  temp_.clear();
  return Status::ok_status();
}

}  // namespace lowbit
