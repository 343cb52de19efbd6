// A regular expression from an untrusted file (a recipe "match", a
// compressed-tensors "re:" target), with bounded cost.
//
// std::regex compiles and matches by recursion and backtracks without limit:
// 30,000 nested parentheses overflow the stack, and ^(.*)*(.*)*...Z$ takes
// exponential time. BoundedRegex uses PCRE2 (Perl syntax, a superset of the
// ECMAScript subset recipes use) with every cost bounded:
//   - pattern length at most kMaxPatternBytes, parentheses nested at most
//     kMaxParensNesting deep (pcre2_set_parens_nest_limit): compile errors;
//   - pcre2_set_match_limit / pcre2_set_depth_limit / pcre2_set_heap_limit on
//     every match: a pattern that exceeds them is an error, never a wrong answer
//     (search() returns Expected<bool>).
// No JIT: these patterns match a few hundred short tensor names.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"

namespace lowbit {

// PCRE2's text for an error code (compile or match), e.g. "match limit exceeded".
std::string pcre2_error_message(int code);

class BoundedRegex {
 public:
  static constexpr size_t kMaxPatternBytes = 1024;
  static constexpr uint32_t kMaxParensNesting = 32;
  static constexpr uint32_t kMatchLimit = 100000;  // backtracking steps per match
  static constexpr uint32_t kDepthLimit = 1000;    // nested backtracking points
  static constexpr uint32_t kHeapLimitKib = 4096;

  // Errors begin with `where` and end with PCRE2's reason and offset.
  static Expected<BoundedRegex> compile(const std::string& pattern, const std::string& where);

  // Whether the pattern matches somewhere in `subject` (anchored: only at its
  // start). An error when a limit was exceeded.
  Expected<bool> search(std::string_view subject, bool anchored = false) const;

  const std::string& pattern() const { return pattern_; }

 private:
  struct Compiled;
  std::shared_ptr<const Compiled> compiled_;  // shared: copies of a rule share it
  std::string pattern_;
  std::string where_;
};

}  // namespace lowbit
