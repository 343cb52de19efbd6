// GPT-2's reversible byte <-> Unicode mapping (openai/gpt-2 encoder.py
// bytes_to_unicode). Byte-level BPE vocabularies hold no raw bytes: printable
// Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves and the other
// 68 bytes (controls, space, 0x7F-0xA0, 0xAD) map in order to U+0100.. (so ' ' is
// 'Ġ' U+0120 and '\n' is 'Ċ' U+010A). Encoding turns each byte of a pre-token into
// one such character before merging; decoding maps the characters back.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace lowbit {

// UTF-8 of the character that stands for each byte. A constant table.
const std::array<std::string, 256>& byte_to_unicode_table();

// The byte a mapped code point stands for, or -1 if the code point is not one of
// the 256 characters of the table.
int unicode_to_byte(uint32_t code_point);

// Maps byte-level text back to bytes. Characters outside the table (a vocabulary
// can hold a few) are kept as their UTF-8 so nothing is silently dropped.
std::string byte_level_to_bytes(std::string_view piece);

}  // namespace lowbit
