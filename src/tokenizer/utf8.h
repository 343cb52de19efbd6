// UTF-8 helpers shared by the tokenizers. Tokenizers must accept any byte string
// (a prompt can hold a cut-off multi-byte character), so everything here is total:
// invalid input is mapped, never rejected.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace lowbit {

// Length of the UTF-8 sequence announced by a lead byte, judged from its top four
// bits only (llama.cpp's unicode_len_utf8): continuation and invalid bytes count
// as 1, so walking a string with it always advances.
inline size_t utf8_sequence_length(uint8_t lead) {
  static constexpr uint8_t kLengths[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLengths[lead >> 4];
}

// Appends the UTF-8 encoding of a code point (<= 0x10FFFF).
void append_utf8(uint32_t code_point, std::string& out);

// Returns `text` with every ill-formed byte replaced by U+FFFD, one replacement per
// byte as llama.cpp's unicode_cpts_from_utf8 does. Overlong forms, surrogates and
// values above U+10FFFF count as ill-formed too, so the result is valid for PCRE2's
// UTF mode. Valid text comes back unchanged.
std::string sanitize_utf8(std::string_view text);

// Replaces every occurrence of `from` (non-empty) in `text` by `to`.
std::string replace_all(std::string_view text, std::string_view from, std::string_view to);

// "▁" (U+2581), SentencePiece's visible stand-in for a space.
inline constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";

}  // namespace lowbit
