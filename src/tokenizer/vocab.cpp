#include "tokenizer/vocab.h"

#include <fmt/format.h>

namespace lowbit {

Vocab::Vocab(std::vector<std::string> pieces, std::vector<TokenKind> kinds)
    : pieces_(std::move(pieces)), kinds_(std::move(kinds)) {
  kinds_.resize(pieces_.size(), TokenKind::kNormal);
  ids_.reserve(pieces_.size());
  for (int32_t id = 0; id < size(); ++id) ids_.emplace(pieces_[id], id);
}

int32_t Vocab::find(std::string_view piece) const {
  const auto it = ids_.find(piece);
  return it == ids_.end() ? -1 : it->second;
}

int parse_byte_piece(std::string_view piece) {
  if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>') return -1;
  int value = 0;
  for (size_t i = 3; i < 5; ++i) {
    const char c = piece[i];
    int digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      digit = c - 'A' + 10;
    } else {
      return -1;
    }
    value = value * 16 + digit;
  }
  return value;
}

std::string byte_piece(uint8_t byte) { return fmt::format("<0x{:02X}>", byte); }

}  // namespace lowbit
