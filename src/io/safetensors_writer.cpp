#include "io/safetensors_writer.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "core/half.h"
#include "io/untrusted_json.h"

namespace lowbit {

Expected<uint64_t> SafetensorsEntry::byte_size() const {
  uint64_t n = safetensors_dtype_info(dtype).bytes;
  for (int64_t d : shape) {
    if (d < 0) return make_error("tensor '{}': negative dimension {}", name, d);
    if (d != 0 && n > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(d)) {
      return make_error("tensor '{}': shape overflows", name);
    }
    n *= static_cast<uint64_t>(d);
  }
  return n;
}

Expected<SafetensorsStreamWriter> SafetensorsStreamWriter::create(const std::string& path,
                                                                  std::vector<SafetensorsEntry> entries,
                                                                  const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = std::move(meta);
  }
  SafetensorsStreamWriter w;
  w.path_ = path;
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const SafetensorsEntry& e : entries) {
    if (e.name.empty() || e.name == "__metadata__" || !names.insert(e.name).second) {
      return make_error("{}: tensor name '{}' is empty, reserved or repeated", path, e.name);
    }
    auto size = e.byte_size();
    if (!size.ok()) return size.status().with_context(path);
    header[e.name] = {{"dtype", safetensors_dtype_info(e.dtype).name},
                      {"shape", e.shape},
                      {"data_offsets", {offset, offset + *size}}};
    offset += *size;
    w.sizes_.push_back(*size);
  }
  w.entries_ = std::move(entries);
  std::string text = dump_json(header);
  // Pad so the data buffer starts 8-byte aligned (8 + header length).
  text.append((8 - text.size() % 8) % 8, ' ');

  LB_ASSIGN_OR_RETURN(AtomicFileWriter file, AtomicFileWriter::create(path));
  const uint64_t header_len = text.size();
  LB_RETURN_IF_ERROR(file.write(&header_len, sizeof(header_len)));
  LB_RETURN_IF_ERROR(file.write(text.data(), text.size()));
  w.file_.emplace(std::move(file));
  return w;
}

const std::string& SafetensorsStreamWriter::next_name() const {
  static const std::string kNone;
  return next_ < entries_.size() ? entries_[next_].name : kNone;
}

Status SafetensorsStreamWriter::append(const std::string& name, std::span<const uint8_t> bytes) {
  if (!file_) return make_error("{}: writer is closed", path_);
  if (next_ >= entries_.size()) return make_error("{}: tensor '{}' appended after the last one", path_, name);
  if (name != entries_[next_].name) {
    return make_error("{}: tensor '{}' appended where the header expects '{}'", path_, name, entries_[next_].name);
  }
  if (bytes.size() != sizes_[next_]) {
    return make_error("{}: tensor '{}' has {} bytes, the header says {}", path_, name, bytes.size(), sizes_[next_]);
  }
  if (Status st = file_->write(bytes.data(), bytes.size()); !st.ok()) {
    file_.reset();  // removes the temporary file
    return st;
  }
  data_bytes_ += bytes.size();
  ++next_;
  return Status::ok_status();
}

Status SafetensorsStreamWriter::finish() {
  if (!file_) return make_error("{}: writer is closed", path_);
  if (next_ != entries_.size()) {
    return make_error("{}: only {} of {} tensors were written (next: '{}')", path_, next_, entries_.size(),
                      entries_[next_].name);
  }
  Status st = file_->commit();
  file_.reset();
  return st;
}

Expected<std::vector<std::vector<size_t>>> plan_safetensors_shards(const std::vector<SafetensorsEntry>& entries,
                                                                   uint64_t max_shard_bytes) {
  if (max_shard_bytes == 0) return make_error("shard size must be positive");
  std::vector<std::vector<size_t>> shards;
  uint64_t filled = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    LB_ASSIGN_OR_RETURN(uint64_t size, entries[i].byte_size());
    if (shards.empty() || (filled > 0 && filled + size > max_shard_bytes)) {
      shards.emplace_back();
      filled = 0;
    }
    shards.back().push_back(i);
    filled += size;
  }
  if (shards.empty()) shards.emplace_back();
  return shards;
}

std::string safetensors_shard_name(size_t index, size_t n_shards) {
  if (n_shards <= 1) return "model.safetensors";
  return fmt::format("model-{:05d}-of-{:05d}.safetensors", index + 1, n_shards);
}

// The FP32-input writer of io/safetensors.h, on the stream writer.
Status write_safetensors(const std::string& path, const std::vector<SafetensorsWriteTensor>& tensors,
                         const std::map<std::string, std::string>& metadata) {
  std::vector<SafetensorsEntry> entries;
  for (const auto& t : tensors) {
    if (t.dtype != SafetensorsDtype::kF32 && t.dtype != SafetensorsDtype::kF16 && t.dtype != SafetensorsDtype::kBF16) {
      return make_error("{}: tensor '{}': cannot write dtype {} (F32, F16 or BF16 only)", path, t.name,
                        safetensors_dtype_info(t.dtype).name);
    }
    entries.push_back({t.name, t.dtype, t.shape});
  }
  LB_ASSIGN_OR_RETURN(SafetensorsStreamWriter w, SafetensorsStreamWriter::create(path, entries, metadata));
  std::vector<uint8_t> bytes;
  for (size_t k = 0; k < tensors.size(); ++k) {
    const auto& t = tensors[k];
    LB_ASSIGN_OR_RETURN(uint64_t size, entries[k].byte_size());
    if (size > 0 && t.values == nullptr) return make_error("{}: tensor '{}': no values given", path, t.name);
    const size_t n = size / safetensors_dtype_info(t.dtype).bytes;
    bytes.resize(size);
    if (t.dtype == SafetensorsDtype::kF32) {
      if (n > 0) std::memcpy(bytes.data(), t.values, size);
    } else {
      const bool bf16 = t.dtype == SafetensorsDtype::kBF16;
      for (size_t i = 0; i < n; ++i) {
        const uint16_t h = bf16 ? float_to_bf16(t.values[i]) : float_to_fp16(t.values[i]);
        std::memcpy(bytes.data() + 2 * i, &h, 2);
      }
    }
    LB_RETURN_IF_ERROR(w.append(t.name, bytes));
  }
  return w.finish();
}

}  // namespace lowbit
