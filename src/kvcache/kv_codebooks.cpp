#include "kvcache/kv_codebooks.h"

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

namespace lowbit {

Status check_codebook_levels(const std::vector<float>& levels, const std::string& what) {
  if (levels.size() < 2 || levels.size() > 256) return make_error("{}: need 2..256 levels, got {}", what, levels.size());
  for (size_t i = 0; i < levels.size(); ++i) {
    if (!std::isfinite(levels[i])) return make_error("{}: level {} is not finite", what, i);
    if (i > 0 && !(levels[i - 1] < levels[i])) {
      return make_error("{}: levels must be strictly increasing (level {} = {} after {})", what, i, levels[i],
                        levels[i - 1]);
    }
  }
  return Status::ok_status();
}

nlohmann::json KvCodebooks::to_json() const {
  nlohmann::json out = nlohmann::json::array();
  for (const KvLayerCodebooks& l : layers) out.push_back({{"key", l.key}, {"value", l.value}});
  return out;
}

Expected<KvCodebooks> KvCodebooks::from_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_array()) return make_error("{}: \"codebooks\" must be an array of {{\"key\", \"value\"}} objects", source);
  KvCodebooks books;
  for (size_t i = 0; i < j.size(); ++i) {
    const nlohmann::json& e = j[i];
    KvLayerCodebooks l;
    try {
      if (e.contains("key")) l.key = e.at("key").get<std::vector<float>>();
      if (e.contains("value")) l.value = e.at("value").get<std::vector<float>>();
    } catch (const nlohmann::json::exception& ex) {
      return make_error("{}: codebooks[{}]: {}", source, i, ex.what());
    }
    if (!l.key.empty()) LB_RETURN_IF_ERROR(check_codebook_levels(l.key, fmt::format("{}: codebooks[{}].key", source, i)));
    if (!l.value.empty()) {
      LB_RETURN_IF_ERROR(check_codebook_levels(l.value, fmt::format("{}: codebooks[{}].value", source, i)));
    }
    books.layers.push_back(std::move(l));
  }
  return books;
}

namespace {

void put_u32(std::vector<uint8_t>& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

void put_levels(std::vector<uint8_t>& out, const std::vector<float>& levels) {
  put_u32(out, static_cast<uint32_t>(levels.size()));
  for (float v : levels) {
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    put_u32(out, bits);
  }
}

struct Reader {
  const uint8_t* data;
  size_t size;
  size_t at = 0;
  bool u32(uint32_t* v) {
    if (size - at < 4) return false;
    *v = 0;
    for (int i = 0; i < 4; ++i) *v |= static_cast<uint32_t>(data[at + i]) << (8 * i);
    at += 4;
    return true;
  }
  bool levels(std::vector<float>* out) {
    uint32_t n = 0;
    if (!u32(&n) || n > 256 || (size - at) / 4 < n) return false;
    out->resize(n);
    for (uint32_t i = 0; i < n; ++i) {
      uint32_t bits = 0;
      u32(&bits);
      std::memcpy(&(*out)[i], &bits, 4);
    }
    return true;
  }
};

}  // namespace

std::vector<uint8_t> KvCodebooks::to_bytes() const {
  std::vector<uint8_t> out;
  put_u32(out, static_cast<uint32_t>(layers.size()));
  for (const KvLayerCodebooks& l : layers) {
    put_levels(out, l.key);
    put_levels(out, l.value);
  }
  return out;
}

Expected<KvCodebooks> KvCodebooks::from_bytes(const uint8_t* data, size_t size, const std::string& source) {
  Reader r{data, size};
  uint32_t n_layers = 0;
  if (!r.u32(&n_layers) || n_layers > (1u << 16)) return make_error("{}: KV codebooks: bad layer count", source);
  KvCodebooks books;
  books.layers.resize(n_layers);
  for (uint32_t i = 0; i < n_layers; ++i) {
    KvLayerCodebooks& l = books.layers[i];
    if (!r.levels(&l.key) || !r.levels(&l.value)) {
      return make_error("{}: KV codebooks: layer {} is truncated or has more than 256 levels", source, i);
    }
    if (!l.key.empty()) LB_RETURN_IF_ERROR(check_codebook_levels(l.key, fmt::format("{}: layer {} keys", source, i)));
    if (!l.value.empty()) {
      LB_RETURN_IF_ERROR(check_codebook_levels(l.value, fmt::format("{}: layer {} values", source, i)));
    }
  }
  if (r.at != size) return make_error("{}: KV codebooks: {} trailing bytes", source, size - r.at);
  return books;
}

}  // namespace lowbit
