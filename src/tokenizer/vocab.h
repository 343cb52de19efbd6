// A tokenizer vocabulary: the piece string of every id, its kind, and the reverse
// map. Shared by the SentencePiece-style and the byte-level tokenizers.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace lowbit {

// The codes of GGUF tokenizer.ggml.token_type (llama.cpp llama_token_type).
enum class TokenKind : uint8_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// Transparent hash so lookups by string_view need no temporary std::string.
struct StringViewHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

class Vocab {
 public:
  Vocab() = default;
  // `kinds` may be shorter than `pieces`; missing kinds are kNormal. When a piece
  // occurs twice the first id keeps it (lookups return the lowest id).
  Vocab(std::vector<std::string> pieces, std::vector<TokenKind> kinds);

  int32_t size() const { return static_cast<int32_t>(pieces_.size()); }
  bool contains(int32_t id) const { return id >= 0 && id < size(); }
  const std::string& piece(int32_t id) const { return pieces_[id]; }
  TokenKind kind(int32_t id) const { return kinds_[id]; }
  // -1 if absent.
  int32_t find(std::string_view piece) const;

  // Tokens whose text is matched literally in input text before any splitting
  // (llama.cpp parse_special: unknown, control and user-defined tokens).
  bool is_matched_literally(int32_t id) const {
    const TokenKind k = kinds_[id];
    return k == TokenKind::kUnknown || k == TokenKind::kControl || k == TokenKind::kUserDefined;
  }

 private:
  std::vector<std::string> pieces_;
  std::vector<TokenKind> kinds_;
  std::unordered_map<std::string, int32_t, StringViewHash, std::equal_to<>> ids_;
};

// The byte of a SentencePiece byte-fallback piece "<0xAB>" (upper-case hex, as
// SentencePiece writes it), or -1 for any other piece.
int parse_byte_piece(std::string_view piece);

// "<0xAB>" for a byte.
std::string byte_piece(uint8_t byte);

}  // namespace lowbit
