// Regex pre-tokenization for byte-level BPE: text is cut into words (" world",
// "123", "!!") that BPE then merges separately. A pre-tokenizer is a list of
// patterns applied in turn, each to every piece the previous one produced; text
// between matches is kept as pieces of its own (llama.cpp unicode_regex_split,
// Hugging Face Split with behavior "Isolated"). Patterns run on PCRE2 in UTF mode
// with Unicode properties, so \p{L}, \p{N} and \s follow the Unicode tables.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace lowbit {

class RegexSplitter {
 public:
  RegexSplitter() = default;
  // Compiles the patterns; the error names the pattern and PCRE2's message.
  static Expected<RegexSplitter> compile(const std::vector<std::string>& patterns);

  // `text` must be valid UTF-8 (see sanitize_utf8). Pieces point into `text`, are
  // never empty, and concatenate to `text`.
  std::vector<std::string_view> split(std::string_view text) const;

  const std::vector<std::string>& patterns() const { return patterns_; }

 private:
  struct Compiled;
  std::vector<std::string> patterns_;
  std::vector<std::shared_ptr<const Compiled>> compiled_;  // immutable once built
};

// The GPT-2 pattern with its final "\s+" alternative (Hugging Face ByteLevel
// use_regex = true).
extern const char* const kGpt2Pattern;

// Pre-tokenizer of a GGUF tokenizer.ggml.pre value, with the flags llama.cpp
// (llama-vocab.cpp) sets alongside it.
struct PreTokenizerPreset {
  std::vector<std::string> patterns;
  bool ignore_merges = false;  // a word that is a whole token is taken as is (Llama 3)
  bool add_bos = false;
};

// Error for names outside the table, listing the supported ones.
Expected<PreTokenizerPreset> find_pretokenizer_preset(std::string_view name);

}  // namespace lowbit
