#include "tokenizer/pretokenize.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <array>

#include "core/bounded_regex.h"
#include "tokenizer/utf8.h"

namespace lowbit {

const char* const kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";


struct RegexSplitter::Compiled {
  pcre2_code* code = nullptr;
  pcre2_match_context* match_context = nullptr;
  Compiled() = default;
  Compiled(const Compiled&) = delete;
  Compiled& operator=(const Compiled&) = delete;
  ~Compiled() {
    pcre2_match_context_free(match_context);
    pcre2_code_free(code);
  }
};

Expected<RegexSplitter> RegexSplitter::compile(const std::vector<std::string>& patterns) {
  RegexSplitter splitter;
  std::unique_ptr<pcre2_compile_context, decltype(&pcre2_compile_context_free)> context(
      pcre2_compile_context_create(nullptr), &pcre2_compile_context_free);
  if (context == nullptr) return make_error("pre-tokenizer: out of memory compiling the patterns");
  pcre2_set_parens_nest_limit(context.get(), kMaxParensNesting);
  for (const std::string& pattern : patterns) {
    if (pattern.size() > kMaxPatternBytes) {
      return make_error("pre-tokenizer pattern of {} bytes: too complex, at most {}", pattern.size(),
                        kMaxPatternBytes);
    }
    auto compiled = std::make_shared<Compiled>();
    int error_code = 0;
    PCRE2_SIZE error_offset = 0;
    compiled->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, context.get());
    if (compiled->code == nullptr) {
      return make_error("pre-tokenizer pattern '{}': {} at offset {}", pattern, pcre2_error_message(error_code),
                        error_offset);
    }
    compiled->match_context = pcre2_match_context_create(nullptr);
    if (compiled->match_context == nullptr) return make_error("pre-tokenizer: out of memory compiling the patterns");
    pcre2_set_match_limit(compiled->match_context, kMatchLimit);
    pcre2_set_depth_limit(compiled->match_context, kDepthLimit);
    pcre2_set_heap_limit(compiled->match_context, kHeapLimitKib);
    // JIT makes matching several times faster (it honours the match limit; deep
    // backtracking ends at its 32 KiB stack, PCRE2_ERROR_JIT_STACKLIMIT);
    // without it (a PCRE2 built without JIT support) pcre2_match interprets the
    // pattern, which is still correct.
    pcre2_jit_compile(compiled->code, PCRE2_JIT_COMPLETE);
    splitter.compiled_.push_back(std::move(compiled));
    splitter.patterns_.push_back(pattern);
  }
  return splitter;
}

Expected<std::vector<std::string_view>> RegexSplitter::split(std::string_view text) const {
  std::vector<std::string_view> pieces;
  if (text.empty()) return pieces;
  pieces.push_back(text);
  std::vector<std::string_view> next;
  for (size_t p = 0; p < compiled_.size(); ++p) {
    const Compiled* compiled = compiled_[p].get();
    // Match data per call keeps concurrent encode() calls independent.
    std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> match(
        pcre2_match_data_create_from_pattern(compiled->code, nullptr), &pcre2_match_data_free);
    next.clear();
    for (const std::string_view piece : pieces) {
      const auto* subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
      size_t kept = 0;    // end of the text already emitted
      size_t offset = 0;  // where the next search starts
      while (offset < piece.size()) {
        const int rc = pcre2_match(compiled->code, subject, piece.size(), offset, PCRE2_NO_UTF_CHECK,
                                   match.get(), compiled->match_context);
        if (rc == PCRE2_ERROR_NOMATCH) break;  // the rest stays one piece
        if (rc < 0) {
          return make_error("pre-tokenizer pattern '{}': pattern too complex for the text: {} (at byte {} of a "
                            "{}-byte piece)", patterns_[p], pcre2_error_message(rc), offset, piece.size());
        }
        const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match.get());
        const size_t begin = ovector[0];
        const size_t end = ovector[1];
        if (end == begin) {  // an empty match splits nothing; step one character
          if (begin >= piece.size()) break;
          offset = begin + utf8_sequence_length(static_cast<uint8_t>(piece[begin]));
          continue;
        }
        if (begin > kept) next.push_back(piece.substr(kept, begin - kept));
        next.push_back(piece.substr(begin, end - begin));
        kept = offset = end;
      }
      if (kept < piece.size()) next.push_back(piece.substr(kept));
    }
    pieces.swap(next);
  }
  return pieces;
}

namespace {

// llama.cpp's adapted Llama 3 pattern ((?i:...) spelled out as classes).
constexpr const char* kLlama3Pattern =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen2: as Llama 3 but digits one at a time.
constexpr const char* kQwen2Pattern =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

struct PresetEntry {
  std::vector<std::string_view> names;
  PreTokenizerPreset preset;
};

// Mirrors the switch in llama.cpp llm_tokenizer_bpe (llama-vocab.cpp) for the
// families lowbit supports.
const std::vector<PresetEntry>& preset_table() {
  static const std::vector<PresetEntry> table = {
      // llama.cpp's fallback for an unnamed pre-tokenizer: punctuation runs, then
      // GPT-2 words, then digit runs, then groups of three ASCII digits.
      {{"default"}, {{R"([\p{P}\$\+<=>\^~\|]+)", kGpt2Pattern, R"(\p{N}+)", "[0-9][0-9][0-9]"}, false, false}},
      {{"gpt-2", "phi-2", "mpt", "olmo", "jais", "jina-es", "jina-de", "jina-v2-es", "jina-v2-de", "gigachat"},
       {{kGpt2Pattern}, false, false}},
      // GPT-2 words after splitting every digit off on its own.
      {{"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva"},
       {{R"(\p{N})", kGpt2Pattern}, false, false}},
      {{"llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral"}, {{kLlama3Pattern}, true, true}},
      {{"dbrx", "smaug-bpe"}, {{kLlama3Pattern}, false, false}},
      {{"qwen2", "deepseek-r1-qwen", "stablelm2"}, {{kQwen2Pattern}, false, false}},
  };
  return table;
}

}  // namespace

Expected<PreTokenizerPreset> find_pretokenizer_preset(std::string_view name) {
  std::string known;
  for (const PresetEntry& entry : preset_table()) {
    for (const std::string_view n : entry.names) {
      if (n == name) return entry.preset;
      known += known.empty() ? "" : ", ";
      known += n;
    }
  }
  return make_error("unsupported pre-tokenizer '{}' (supported: {})", name, known);
}

}  // namespace lowbit
