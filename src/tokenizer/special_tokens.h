// Splits text around special-token strings ("<s>", "<|im_start|>") before the
// normal tokenizer sees it, as llama.cpp tokenizer_st_partition does with
// parse_special = true: specials are taken longest first, and each one splits
// every remaining text fragment at all its occurrences.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/vocab.h"

namespace lowbit {

struct TextFragment {
  int32_t token = -1;     // the special token, or -1 for plain text
  std::string_view text;  // the plain text (points into the input)
};

class SpecialTokenSplitter {
 public:
  SpecialTokenSplitter() = default;
  // Every token for which vocab.is_matched_literally() holds, skipping empty pieces.
  explicit SpecialTokenSplitter(const Vocab& vocab);
  // An explicit list of (text, id) pairs.
  explicit SpecialTokenSplitter(std::vector<std::pair<std::string, int32_t>> specials);

  // Fragments in text order; plain fragments are never empty.
  std::vector<TextFragment> split(std::string_view text) const;

  size_t size() const { return specials_.size(); }

 private:
  void index();
  std::vector<std::pair<std::string, int32_t>> specials_;  // longest first, then by id
  std::vector<std::vector<uint32_t>> by_first_byte_;         // [256] indices into specials_
};

}  // namespace lowbit
