#include "core/atomic_file_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

namespace lowbit {
namespace {

Status check_writable_folder(const std::filesystem::path& folder) {
  std::error_code ec;
  if (!std::filesystem::exists(folder, ec)) return make_error("folder {} does not exist", folder.string());
  if (!std::filesystem::is_directory(folder, ec)) return make_error("{} is not a folder", folder.string());
  if (access(folder.c_str(), W_OK | X_OK) != 0) return make_error("folder {} is not writable", folder.string());
  return Status::ok_status();
}

}  // namespace

Status check_output_file_path(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (path.empty()) return make_error("empty path");
  if (fs::is_directory(path, ec)) return make_error("is a folder; give a file name");
  const fs::path parent = fs::path(path).parent_path();
  return check_writable_folder(parent.empty() ? fs::path(".") : parent);
}

Status check_output_folder_path(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (path.empty()) return make_error("empty path");
  fs::path p = fs::absolute(path, ec);
  if (fs::exists(p, ec)) {
    if (!fs::is_directory(p, ec)) return make_error("is a file; give a folder");
    return check_writable_folder(p);
  }
  while (p.has_parent_path() && p.parent_path() != p && !fs::exists(p, ec)) p = p.parent_path();
  return check_writable_folder(p);
}

Expected<AtomicFileWriter> AtomicFileWriter::create(const std::string& path) {
  std::string temp = path + ".tmp";
  RemoveOnInterrupt on_interrupt(temp);  // before the file exists, so no moment leaves it behind
  std::FILE* file = std::fopen(temp.c_str(), "wb");
  if (file == nullptr) return make_error("{}: cannot create: {}", temp, std::strerror(errno));
  return AtomicFileWriter(path, std::move(temp), file, std::move(on_interrupt));
}

Expected<AtomicFileWriter> AtomicFileWriter::reopen(const std::string& path, uint64_t length) {
  std::string temp = path + ".tmp";
  std::FILE* file = std::fopen(temp.c_str(), "r+b");
  if (file == nullptr) return make_error("{}: cannot reopen: {}", temp, std::strerror(errno));
  AtomicFileWriter writer(path, std::move(temp), file, RemoveOnInterrupt());
  struct stat st {};
  if (fstat(fileno(file), &st) != 0) return make_error("{}: cannot stat: {}", writer.temp_, std::strerror(errno));
  if (static_cast<uint64_t>(st.st_size) < length) {
    return make_error("{}: {} bytes, shorter than the {} bytes to keep", writer.temp_, st.st_size, length);
  }
  if (ftruncate(fileno(file), static_cast<off_t>(length)) != 0 ||
      std::fseek(file, static_cast<long>(length), SEEK_SET) != 0) {
    return make_error("{}: cannot cut to {} bytes: {}", writer.temp_, length, std::strerror(errno));
  }
  writer.offset_ = length;
  return writer;
}

AtomicFileWriter::AtomicFileWriter(AtomicFileWriter&& other) noexcept
    : path_(std::move(other.path_)),
      temp_(std::move(other.temp_)),
      file_(other.file_),
      offset_(other.offset_),
      on_interrupt_(std::move(other.on_interrupt_)) {
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
  on_interrupt_.release();
}

Status AtomicFileWriter::write(const void* data, uint64_t bytes) {
  if (file_ == nullptr) return make_error("{}: write after the file was closed", path_);
  if (bytes > 0 && std::fwrite(data, 1, bytes, file_) != bytes) {
    return make_error("{}: write failed at byte {}: {}", temp_, offset_, std::strerror(errno));
  }
  offset_ += bytes;
  return Status::ok_status();
}

Status AtomicFileWriter::write_direct(const void* data, uint64_t bytes) {
  constexpr uint64_t kAlign = 4096, kChunk = 8ull << 20;
  if (bytes < 4 * kChunk) return write(data, bytes);
  const auto* src = static_cast<const uint8_t*>(data);
  const uint64_t head = (kAlign - offset_ % kAlign) % kAlign;
  LB_RETURN_IF_ERROR(write(src, head));
  if (std::fflush(file_) != 0) return make_error("{}: write failed at byte {}: {}", temp_, offset_, std::strerror(errno));
  const int fd = ::open(temp_.c_str(), O_WRONLY | O_DIRECT);
  if (fd < 0) return write(src + head, bytes - head);  // no O_DIRECT on this file system
  struct Closer {
    int fd;
    void* buf = nullptr;
    ~Closer() {
      std::free(buf);
      ::close(fd);
    }
  } closer{fd};
  if (posix_memalign(&closer.buf, kAlign, kChunk) != 0) return write(src + head, bytes - head);
  const uint64_t body = (bytes - head) / kAlign * kAlign;
  for (uint64_t done = 0; done < body;) {
    const uint64_t n = std::min(kChunk, body - done);
    std::memcpy(closer.buf, src + head + done, n);
    for (uint64_t put = 0; put < n;) {
      const ssize_t w = ::pwrite(fd, static_cast<uint8_t*>(closer.buf) + put, n - put,
                                 static_cast<off_t>(offset_ + done + put));
      if (w <= 0) return make_error("{}: write failed at byte {}: {}", temp_, offset_ + done + put, std::strerror(errno));
      put += static_cast<uint64_t>(w);
    }
    done += n;
  }
  offset_ += body;
  if (std::fseek(file_, static_cast<long>(offset_), SEEK_SET) != 0) {
    return make_error("{}: cannot seek to byte {}: {}", temp_, offset_, std::strerror(errno));
  }
  return write(src + head + body, bytes - head - body);
}

Status AtomicFileWriter::pad_to(uint64_t alignment) {
  const std::vector<uint8_t> zeros((alignment - offset_ % alignment) % alignment, 0);
  return write(zeros.data(), zeros.size());
}

Status AtomicFileWriter::sync() {
  if (file_ == nullptr) return make_error("{}: already closed", path_);
  if (std::fflush(file_) != 0 || fsync(fileno(file_)) != 0) {
    return make_error("{}: cannot flush: {}", temp_, std::strerror(errno));
  }
  return Status::ok_status();
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
  on_interrupt_.release();
  return Status::ok_status();
}

}  // namespace lowbit
