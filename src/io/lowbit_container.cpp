#include "io/lowbit_container.h"

#include <cstring>
#include <vector>

#include "io/untrusted_json.h"

namespace lowbit {
namespace {

void put_u64(uint8_t* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
}
void put_u32(uint8_t* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint64_t get_u64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}
uint32_t get_u32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(p[i]) << (8 * i);
  return v;
}

}  // namespace

nlohmann::json blob_json(const BlobRef& ref) { return {{"offset", ref.offset}, {"bytes", ref.bytes}}; }

bool is_lowbit_container(const GgufFile& gguf) {
  const GgufValue* arch = gguf.find("general.architecture");
  return arch != nullptr && arch->type == GgufValueType::STRING && arch->as_string() == kLowbitArchitecture;
}

// ---------------------------------------------------------------------------- writer

Expected<ContainerWriter> ContainerWriter::create(const std::string& path, GgufWriter header) {
  LB_ASSIGN_OR_RETURN(AtomicFileWriter file, AtomicFileWriter::create(path));
  ContainerWriter writer(std::move(file));
  header.set_string("general.architecture", kLowbitArchitecture);
  header.set_u32("lowbit.container_version", kLowbitContainerVersion);
  const std::string image = header.serialize();
  LB_RETURN_IF_ERROR(writer.file_.write(image.data(), image.size()));
  LB_RETURN_IF_ERROR(writer.file_.pad_to(kLowbitBlobAlignment));
  writer.data_begin_ = writer.file_.offset();
  return writer;
}

Expected<ContainerWriter> ContainerWriter::reopen(const std::string& path, uint64_t data_begin, uint64_t length) {
  if (data_begin > length || data_begin % kLowbitBlobAlignment != 0) {
    return make_error("{}.tmp: header end {} is not a 64-byte boundary within its {} bytes", path, data_begin, length);
  }
  LB_ASSIGN_OR_RETURN(AtomicFileWriter file, AtomicFileWriter::reopen(path, length));
  ContainerWriter writer(std::move(file));
  writer.data_begin_ = data_begin;
  return writer;
}

Expected<BlobRef> ContainerWriter::append(const void* data, uint64_t bytes) {
  LB_RETURN_IF_ERROR(file_.pad_to(kLowbitBlobAlignment));
  const BlobRef ref{file_.offset(), bytes};
  LB_RETURN_IF_ERROR(file_.write(data, bytes));
  return ref;
}

Status ContainerWriter::finish(const nlohmann::json& index) {
  LB_RETURN_IF_ERROR(file_.pad_to(kLowbitBlobAlignment));
  const std::string text = dump_json(index);
  const uint64_t index_offset = file_.offset();
  LB_RETURN_IF_ERROR(file_.write(text.data(), text.size()));
  uint8_t footer[kLowbitFooterBytes] = {};
  put_u64(footer + 0, data_begin_);
  put_u64(footer + 8, index_offset);
  put_u64(footer + 16, text.size());
  put_u32(footer + 24, kLowbitContainerVersion);
  put_u32(footer + 28, 0);
  std::memcpy(footer + 32, kLowbitFooterMagic, 8);
  LB_RETURN_IF_ERROR(file_.write(footer, sizeof(footer)));
  return file_.commit();
}

// ---------------------------------------------------------------------------- reader

Expected<ContainerReader> ContainerReader::open(const std::string& path) {
  LB_ASSIGN_OR_RETURN(MappedFile file, MappedFile::open(path));
  const uint64_t size = file.size();
  const uint8_t* end = file.data() + size;
  if (size < kLowbitFooterBytes || std::memcmp(end - 8, kLowbitFooterMagic, 8) != 0) {
    return make_error("{}: no lowbit end record: the file is truncated or was not completely written", path);
  }
  const uint8_t* footer = end - kLowbitFooterBytes;
  const uint64_t data_begin = get_u64(footer + 0);
  const uint64_t index_offset = get_u64(footer + 8);
  const uint64_t index_bytes = get_u64(footer + 16);
  const uint32_t version = get_u32(footer + 24);
  if (version != kLowbitContainerVersion) {
    return make_error("{}: lowbit container version {}, this build reads version {}", path, version,
                      kLowbitContainerVersion);
  }
  const uint64_t body = size - kLowbitFooterBytes;
  if (index_offset > body || index_bytes != body - index_offset || data_begin > index_offset ||
      data_begin % kLowbitBlobAlignment != 0) {
    return make_error(
        "{}: footer sections (data at {}, index [{}, +{})) do not end at the footer (byte {}): damaged "
        "file",
        path, data_begin, index_offset, index_bytes, body);
  }
  LB_ASSIGN_OR_RETURN(GgufFile header, GgufFile::open(path));
  if (!is_lowbit_container(header)) return make_error("{}: not a lowbit model (general.architecture)", path);
  const int64_t header_version = header.get_int_or("lowbit.container_version", -1);
  if (header_version != version) {
    return make_error("{}: header says container version {}, footer {}", path, header_version, version);
  }
  ContainerReader reader(std::move(file), std::move(header));
  const char* index_text = reinterpret_cast<const char*>(reader.file_.data() + index_offset);
  LB_ASSIGN_OR_RETURN(reader.index_,
                      parse_untrusted_json(std::string_view(index_text, index_bytes), path + ": index"));
  if (!reader.index_.is_object()) return make_error("{}: index is not a JSON object", path);
  reader.data_begin_ = data_begin;
  reader.data_end_ = index_offset;
  return reader;
}

Expected<std::span<const uint8_t>> ContainerReader::blob(const nlohmann::json& ref, const std::string& what) const {
  if (!ref.is_object() || !ref.contains("offset") || !ref.contains("bytes") || !ref["offset"].is_number_unsigned() ||
      !ref["bytes"].is_number_unsigned()) {
    return make_error("{}: {}: blob reference must be {{\"offset\": u64, \"bytes\": u64}}", path(), what);
  }
  const uint64_t offset = ref["offset"].get<uint64_t>();
  const uint64_t bytes = ref["bytes"].get<uint64_t>();
  if (offset % kLowbitBlobAlignment != 0 || offset < data_begin_ || offset > data_end_ || bytes > data_end_ - offset) {
    return make_error("{}: {}: blob [{}, +{}) lies outside the data section [{}, {})", path(), what, offset, bytes,
                      data_begin_, data_end_);
  }
  return std::span<const uint8_t>(file_.data() + offset, bytes);
}

}  // namespace lowbit
