// Regex pre-tokenization for byte-level BPE: text is cut into words (" world",
// "123", "!!") that BPE then merges separately. A pre-tokenizer is a list of
// patterns applied in turn, each to every piece the previous one produced; text
// between matches is kept as pieces of its own (llama.cpp unicode_regex_split,
// Hugging Face Split with behavior "Isolated"). Patterns run on PCRE2 in UTF mode
// with Unicode properties, so \p{L}, \p{N} and \s follow the Unicode tables.
//
// Patterns may come from an untrusted tokenizer.json, so their cost is bounded
// as core/bounded_regex.h bounds recipe patterns: at most kMaxPatternBytes long
// and kMaxParensNesting parentheses deep (compile errors), and every search
// stops after kMatchLimit backtracking steps from one start position (PCRE2
// resets the count at each start, so scanning a long text costs steps per
// byte, not per text). (a*)*b on a run of "a" exceeds the limit at once:
// split() returns an error naming the pattern instead of a silent wrong split.
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

  static constexpr size_t kMaxPatternBytes = 4096;    // real pre-tokenizers: under 300
  static constexpr uint32_t kMaxParensNesting = 32;   // real pre-tokenizers: 3
  static constexpr uint32_t kMatchLimit = 1000000;    // steps per start position
  static constexpr uint32_t kDepthLimit = 100000;     // nested backtracking points (interpreter)
  static constexpr uint32_t kHeapLimitKib = 65536;    // backtracking frames (interpreter)

  // `text` must be valid UTF-8 (see sanitize_utf8). Pieces point into `text`, are
  // never empty, and concatenate to `text`. An error when a pattern exceeds a
  // limit above on this text.
  Expected<std::vector<std::string_view>> split(std::string_view text) const;

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
