#include "core/bounded_regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <array>

namespace lowbit {

std::string pcre2_error_message(int code) {
  std::array<PCRE2_UCHAR, 256> message{};
  pcre2_get_error_message(code, message.data(), message.size());
  return reinterpret_cast<const char*>(message.data());
}

struct BoundedRegex::Compiled {
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

Expected<BoundedRegex> BoundedRegex::compile(const std::string& pattern, const std::string& where) {
  if (pattern.size() > kMaxPatternBytes) {
    return make_error("{}: pattern too complex: {} bytes, at most {}", where, pattern.size(), kMaxPatternBytes);
  }
  std::unique_ptr<pcre2_compile_context, decltype(&pcre2_compile_context_free)> context(
      pcre2_compile_context_create(nullptr), &pcre2_compile_context_free);
  if (context == nullptr) return make_error("{}: out of memory compiling the pattern", where);
  pcre2_set_parens_nest_limit(context.get(), kMaxParensNesting);
  auto compiled = std::make_shared<Compiled>();
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  compiled->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF,
                                 &error_code, &error_offset, context.get());
  if (compiled->code == nullptr) {
    return make_error("{}: bad regex: {} at offset {}", where, pcre2_error_message(error_code), error_offset);
  }
  compiled->match_context = pcre2_match_context_create(nullptr);
  if (compiled->match_context == nullptr) return make_error("{}: out of memory compiling the pattern", where);
  pcre2_set_match_limit(compiled->match_context, kMatchLimit);
  pcre2_set_depth_limit(compiled->match_context, kDepthLimit);
  pcre2_set_heap_limit(compiled->match_context, kHeapLimitKib);
  BoundedRegex out;
  out.compiled_ = std::move(compiled);
  out.pattern_ = pattern;
  out.where_ = where;
  return out;
}

Expected<bool> BoundedRegex::search(std::string_view subject, bool anchored) const {
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> match(
      pcre2_match_data_create_from_pattern(compiled_->code, nullptr), &pcre2_match_data_free);
  if (match == nullptr) return make_error("{}: out of memory matching", where_);
  const int rc = pcre2_match(compiled_->code, reinterpret_cast<PCRE2_SPTR>(subject.data()), subject.size(), 0,
                             anchored ? PCRE2_ANCHORED : 0, match.get(), compiled_->match_context);
  if (rc >= 0) return true;
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT || rc == PCRE2_ERROR_HEAPLIMIT) {
    const char* limit = rc == PCRE2_ERROR_MATCHLIMIT   ? "match limit"
                        : rc == PCRE2_ERROR_DEPTHLIMIT ? "depth limit"
                                                       : "heap limit";
    return make_error("{}: pattern too complex: matching '{}' exceeds the {}", where_, subject, limit);
  }
  return make_error("{}: matching '{}' failed: {}", where_, subject, pcre2_error_message(rc));
}

}  // namespace lowbit
