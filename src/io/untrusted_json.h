// Parsing JSON that comes from a file lowbit did not write (or may have been
// edited): safetensors headers, tokenizer.json, config.json, .lowbit indexes,
// recipes, KV configs, size menus.
//
// nlohmann's parser is iterative, but dump(), the recursive descent of every
// loader and the destructor paths of some library versions are not: a document
// nested 200,000 arrays deep overflows the stack. parse_untrusted_json rejects
// documents nested deeper than kMaxUntrustedJsonDepth while parsing (the
// parser callback sees every object/array start) and turns every
// nlohmann::json::exception (syntax, a number out of range such as 1e400) into
// an error that names `where`.
//
// Messages should never dump() an untrusted value: describe_json() prints a
// scalar (shortened) or just the type of a container.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "core/status.h"

namespace lowbit {

// Deep enough for every real file (tokenizer.json nests about 8 levels).
inline constexpr int kMaxUntrustedJsonDepth = 64;

// `where` starts the error message, e.g. the file path.
Expected<nlohmann::json> parse_untrusted_json(std::string_view text, const std::string& where);

// Same, for an ordered_json (keeps key order, as hf_export needs).
Expected<nlohmann::ordered_json> parse_untrusted_ordered_json(std::string_view text, const std::string& where);

// A short, bounded description for error messages: scalars are printed (strings
// quoted and cut to 40 characters), containers are named by type and size
// ("an array of 3 elements", "an object with 2 keys").
std::string describe_json(const nlohmann::json& v);

// The JSON text of `j` (indent < 0: one line), for every JSON lowbit writes.
// Strings from files and paths are bytes, not always UTF-8 (a GGUF name, a
// token piece, a path with byte 0xFF): nlohmann's dump() throws on those, so
// this replaces each invalid byte with U+FFFD instead.
std::string dump_json(const nlohmann::json& j, int indent = -1);
std::string dump_json(const nlohmann::ordered_json& j, int indent = -1);

}  // namespace lowbit
