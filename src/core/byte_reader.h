// Bounds-checked little-endian cursor over a byte range. Every loader parses through
// it, so a truncated or malformed file yields an error naming the file and offset
// instead of reading past the end.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "core/status.h"

namespace lowbit {

class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t size, std::string source_name)
      : data_(data), size_(size), source_(std::move(source_name)) {}

  size_t offset() const { return offset_; }
  size_t size() const { return size_; }
  size_t remaining() const { return size_ - offset_; }
  const std::string& source() const { return source_; }
  const uint8_t* data() const { return data_; }

  template <typename T>
  Expected<T> read(const char* what) {
    static_assert(std::is_trivially_copyable_v<T>);
    if (remaining() < sizeof(T)) return truncated(what, sizeof(T));
    T value;
    std::memcpy(&value, data_ + offset_, sizeof(T));
    offset_ += sizeof(T);
    return value;
  }

  Expected<std::string> read_bytes_as_string(uint64_t length, const char* what) {
    if (length > remaining()) return truncated(what, length);
    std::string s(reinterpret_cast<const char*>(data_ + offset_), static_cast<size_t>(length));
    offset_ += static_cast<size_t>(length);
    return s;
  }

  Status skip(uint64_t length, const char* what) {
    if (length > remaining()) return truncated(what, length);
    offset_ += static_cast<size_t>(length);
    return Status::ok_status();
  }

  Status seek(uint64_t offset, const char* what) {
    if (offset > size_) {
      return make_error("{}: {} at offset {} is past the end of the file ({} bytes)", source_,
                        what, offset, size_);
    }
    offset_ = static_cast<size_t>(offset);
    return Status::ok_status();
  }

  Status truncated(const char* what, uint64_t needed) const {
    return make_error("{}: truncated file: {} needs {} bytes at offset {}, only {} left", source_,
                      what, needed, offset_, remaining());
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t offset_ = 0;
  std::string source_;
};

}  // namespace lowbit
