#include "tokenizer/special_tokens.h"

#include <algorithm>

namespace lowbit {

SpecialTokenSplitter::SpecialTokenSplitter(const Vocab& vocab) {
  for (int32_t id = 0; id < vocab.size(); ++id) {
    if (vocab.is_matched_literally(id) && !vocab.piece(id).empty()) specials_.emplace_back(vocab.piece(id), id);
  }
  index();
}

SpecialTokenSplitter::SpecialTokenSplitter(std::vector<std::pair<std::string, int32_t>> specials)
    : specials_(std::move(specials)) {
  std::erase_if(specials_, [](const auto& s) { return s.first.empty(); });
  index();
}

void SpecialTokenSplitter::index() {
  std::stable_sort(specials_.begin(), specials_.end(), [](const auto& a, const auto& b) {
    if (a.first.size() != b.first.size()) return a.first.size() > b.first.size();
    return a.second < b.second;
  });
  by_first_byte_.assign(256, {});
  for (size_t s = 0; s < specials_.size(); ++s) {
    by_first_byte_[static_cast<uint8_t>(specials_[s].first[0])].push_back(static_cast<uint32_t>(s));
  }
}

std::vector<TextFragment> SpecialTokenSplitter::split(std::string_view text) const {
  std::vector<TextFragment> fragments;
  if (text.empty()) return fragments;
  fragments.push_back({-1, text});
  if (specials_.empty()) return fragments;

  // Most texts hold no special at all: find which ones occur with one scan over
  // the bytes that can start a special, so the splitting pass below (one search
  // per special) runs only for those.
  std::vector<bool> present(specials_.size(), false);
  size_t n_present = 0;
  for (size_t i = 0; i < text.size() && n_present < specials_.size(); ++i) {
    const std::string_view rest = text.substr(i);
    for (const uint32_t s : by_first_byte_[static_cast<uint8_t>(text[i])]) {
      if (!present[s] && rest.starts_with(specials_[s].first)) {
        present[s] = true;
        ++n_present;
      }
    }
  }
  if (n_present == 0) return fragments;

  std::vector<TextFragment> next;
  for (size_t s = 0; s < specials_.size(); ++s) {
    if (!present[s]) continue;
    const auto& [special, id] = specials_[s];
    next.clear();
    for (const TextFragment& f : fragments) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      std::string_view rest = f.text;
      for (size_t hit; (hit = rest.find(special)) != std::string_view::npos;) {
        if (hit > 0) next.push_back({-1, rest.substr(0, hit)});
        next.push_back({id, {}});
        rest.remove_prefix(hit + special.size());
      }
      if (!rest.empty()) next.push_back({-1, rest});
    }
    fragments.swap(next);
  }
  return fragments;
}

}  // namespace lowbit
