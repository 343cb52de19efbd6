#include "tokenizer/byte_unicode.h"

#include <algorithm>

#include "tokenizer/utf8.h"

namespace lowbit {

namespace {

constexpr bool stands_for_itself(int byte) {
  return (byte >= 0x21 && byte <= 0x7E) || (byte >= 0xA1 && byte <= 0xAC) || (byte >= 0xAE && byte <= 0xFF);
}

// Code point of each byte's character (the table of bytes_to_unicode).
constexpr std::array<uint32_t, 256> make_code_points() {
  std::array<uint32_t, 256> cps{};
  uint32_t next = 256;
  for (int b = 0; b < 256; ++b) cps[b] = stands_for_itself(b) ? static_cast<uint32_t>(b) : next++;
  return cps;
}

constexpr std::array<uint32_t, 256> kCodePoints = make_code_points();

// Inverse over U+0000..U+01FF, which covers every mapped code point (max U+0143).
constexpr std::array<int16_t, 512> make_inverse() {
  std::array<int16_t, 512> inv{};
  for (auto& v : inv) v = -1;
  for (int b = 0; b < 256; ++b) inv[kCodePoints[b]] = static_cast<int16_t>(b);
  return inv;
}

constexpr std::array<int16_t, 512> kInverse = make_inverse();

}  // namespace

const std::array<std::string, 256>& byte_to_unicode_table() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    for (int b = 0; b < 256; ++b) append_utf8(kCodePoints[b], t[b]);
    return t;
  }();
  return table;
}

int unicode_to_byte(uint32_t cp) { return cp < kInverse.size() ? kInverse[cp] : -1; }

std::string byte_level_to_bytes(std::string_view piece) {
  std::string out;
  size_t i = 0;
  while (i < piece.size()) {
    const auto lead = static_cast<uint8_t>(piece[i]);
    size_t n = std::min(utf8_sequence_length(lead), piece.size() - i);
    // The table only uses U+0000..U+01FF: one or two UTF-8 bytes.
    int byte = -1;
    if (n == 1) {
      byte = unicode_to_byte(lead);
    } else if (n == 2) {
      const uint32_t cp = ((lead & 0x1Fu) << 6) | (static_cast<uint8_t>(piece[i + 1]) & 0x3Fu);
      byte = unicode_to_byte(cp);
    }
    if (byte >= 0) {
      out.push_back(static_cast<char>(byte));
    } else {
      out.append(piece.substr(i, n));
    }
    i += n;
  }
  return out;
}

}  // namespace lowbit
